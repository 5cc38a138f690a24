"""oreo_agents: LLM agents in text envs, from logged episodes to trained models and search.

The data flow, one subpackage a stage::

    rollout/      run a policy in envs (lock-step collector, scripted policies, agent prompts)
    data/         the episode store; converters; tokenization into masks; batching
    algorithms/   one spec per algorithm (models it needs, batches, config, micro-batch step)
    losses/       pure loss functions and log-prob helpers
    models/       loading models, the value model, scorers, prefix caches, tiny models
    training/     the one accelerate loop every algorithm runs in, and its checkpoints
    online/       online training: collect -> score -> update, and its reward functions
    generation/   generation backends (HF transformers, vLLM, served models)
    evaluation/   oreo rollout: strategies, value-guided search and acting, metrics, reports
    recipes/      whole pipelines written from the above (oreo demo)
    runtime/      a job's processes and devices, and the software that produced a result

The names below are the public surface; each loads its module on first use, so importing the
package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Episode": "oreo_agents.data.episodes",
    "EpisodeWriter": "oreo_agents.data.episodes",
    "load_episodes": "oreo_agents.data.episodes",
    "read_episodes": "oreo_agents.data.episodes",
    "convert": "oreo_agents.data.convert",
    "tokenize_episodes": "oreo_agents.data.tokenization",
    "ActingConfig": "oreo_agents.rollout.config",
    "CollectConfig": "oreo_agents.rollout.config",
    "run_collect": "oreo_agents.rollout.collect",
    "scripted_policy": "oreo_agents.rollout.scripted",
    "AgentPrompt": "oreo_agents.rollout.agent_prompt",
    "Prompter": "oreo_agents.rollout.prompting",
    "Algorithm": "oreo_agents.algorithms",
    "get_algorithm": "oreo_agents.algorithms",
    "register": "oreo_agents.algorithms",
    "TrainConfig": "oreo_agents.training.loop",
    "run_train": "oreo_agents.training.loop",
    "load_policy": "oreo_agents.models.policy",
    "ValueModel": "oreo_agents.models.value",
    "ValueScorer": "oreo_agents.models.scorer",
    "SamplingParams": "oreo_agents.generation",
    "load_backend": "oreo_agents.generation",
    "RolloutConfig": "oreo_agents.evaluation.evaluate",
    "run_rollout": "oreo_agents.evaluation.evaluate",
    "beam_search": "oreo_agents.evaluation.search",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'oreo_agents' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
