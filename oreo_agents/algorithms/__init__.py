"""The algorithms `oreo train` runs, one spec each, by name.

Adding an algorithm: a spec (a subclass of `Algorithm` with its config dataclass and its
``step``), a pure loss in `oreo_agents.losses`, and one `register` call. An installed package adds
its own through an entry point in the ``oreo.algorithms`` group, with no change here::

    [project.entry-points."oreo.algorithms"]
    mine = "my_package.algos:register_algorithms"   # a function that calls register(...)
"""

from __future__ import annotations

from oreo_agents.algorithms.base import Algorithm
from oreo_agents.algorithms.dpo import DPO, DPOConfig
from oreo_agents.algorithms.kto import KTO, KTOConfig
from oreo_agents.algorithms.oreo import OREO, OREOConfig
from oreo_agents.algorithms.orm import ORM, ORMConfig
from oreo_agents.algorithms.ppo import PPO, PPOConfig
from oreo_agents.algorithms.rcrl import RCRL, RCRLConfig
from oreo_agents.algorithms.sft import SFT, RejectionSampling, RFTConfig, SFTConfig
from oreo_envs.registration import run_entry_points

ENTRY_POINT_GROUP = "oreo.algorithms"
ALGORITHMS: dict[str, Algorithm] = {}
_plugins_loaded = False


def register(spec: Algorithm) -> Algorithm:
    """Make ``spec`` trainable as ``oreo train --algo spec.name``.

    Raises:
        ValueError: Another spec already has that name.
    """
    if spec.name in ALGORITHMS and ALGORITHMS[spec.name] is not spec:
        raise ValueError(f"an algorithm named {spec.name!r} is already registered")
    ALGORITHMS[spec.name] = spec
    return spec


def get_algorithm(name: str) -> Algorithm:
    """The spec registered as ``name`` (plug-ins included).

    Raises:
        ValueError: No such algorithm (the message lists the registered ones).
    """
    if name not in ALGORITHMS:
        load_plugins()
    if name not in ALGORITHMS:
        raise ValueError(f"algo must be one of {algorithm_names()}, got {name!r}")
    return ALGORITHMS[name]


def algorithm_names() -> tuple[str, ...]:
    load_plugins()
    return tuple(ALGORITHMS)


def load_plugins() -> None:
    """Load the ``oreo.algorithms`` entry points of installed packages (once per process); a
    plug-in that fails is reported with a warning and skipped."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    run_entry_points(ENTRY_POINT_GROUP, "algorithm")


# Defaults: Wang et al. 2024, Sec. 5 and App. A.3.
register(OREO("oreo", "OREO, token level (Eq. 8, 9)", level="token", alpha=0.01))
register(OREO("oreo-step", "OREO with states at step starts", level="step", alpha=0.1))
register(OREO("oreo-response", "OREO, one residual per response (Eq. 10)", level="response",
              alpha=0.3))  # fmt: skip
register(SFT("sft", "supervised fine-tuning on the episodes' actions"))
register(RejectionSampling("rft", "rejection sampling: SFT on reward > 0 episodes"))
register(DPO("dpo", "DPO on (correct, incorrect) pairs of the same task"))
register(KTO("kto", "KTO on unpaired desirable / undesirable episodes"))
# Havrilla et al. 2024: return-conditioned RL.
register(RCRL("rcrl", "return-conditioned SFT: every episode after a good/bad control text"))
register(ORM("orm", "outcome reward model: per-token correctness classifier (policy untouched)"))
register(PPO("ppo", "online PPO on --env: collect, KL-penalised rewards, GAE, clipped updates"))

__all__ = [
    "ALGORITHMS",
    "DPO",
    "KTO",
    "OREO",
    "ORM",
    "PPO",
    "RCRL",
    "SFT",
    "Algorithm",
    "DPOConfig",
    "KTOConfig",
    "OREOConfig",
    "ORMConfig",
    "PPOConfig",
    "RCRLConfig",
    "RFTConfig",
    "RejectionSampling",
    "SFTConfig",
    "algorithm_names",
    "get_algorithm",
    "register",
]
