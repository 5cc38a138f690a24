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
from oreo_agents.algorithms.orm import ORM, ORMConfig, ORMRank, ORMRankConfig
from oreo_agents.algorithms.ppo import PPO, PPOConfig
from oreo_agents.algorithms.rcrl import RCRL, RCRLConfig
from oreo_agents.algorithms.sft import SFT, RejectionSampling, RFTConfig, SFTConfig
from oreo_agents.registry import Registry

ENTRY_POINT_GROUP = "oreo.algorithms"
_REGISTRY = Registry("algorithm", "algo", ENTRY_POINT_GROUP)
ALGORITHMS: dict[str, Algorithm] = _REGISTRY.specs
# register(spec) makes spec trainable as ``oreo train --algo spec.name``
register = _REGISTRY.register
get_algorithm = _REGISTRY.get
algorithm_names = _REGISTRY.names
load_plugins = _REGISTRY.load_plugins


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
register(ORMRank("orm-rank", "outcome reward model ranking a task's correct over incorrect "
                 "episodes, action by action (policy untouched)"))
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
    "ORMRank",
    "ORMRankConfig",
    "PPOConfig",
    "RCRLConfig",
    "RFTConfig",
    "RejectionSampling",
    "SFTConfig",
    "algorithm_names",
    "get_algorithm",
    "register",
]
