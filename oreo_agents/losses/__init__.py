"""Pure loss functions: tensors in, (loss, metrics) out (docs/architecture.md)."""

from oreo_agents.losses.dpo import dpo_loss
from oreo_agents.losses.kto import kto_loss, kto_reference_point
from oreo_agents.losses.logprobs import sequence_logps, token_logps
from oreo_agents.losses.oreo import kl_penalty, oreo_loss, suffix_sum
from oreo_agents.losses.orm import orm_loss, rank_loss
from oreo_agents.losses.ppo import (
    gae,
    kl_rewards,
    leave_one_out,
    ppo_policy_loss,
    ppo_value_loss,
    whiten,
)
from oreo_agents.losses.sft import sft_loss

__all__ = [
    "dpo_loss",
    "gae",
    "kl_rewards",
    "kl_penalty",
    "kto_loss",
    "kto_reference_point",
    "leave_one_out",
    "oreo_loss",
    "orm_loss",
    "ppo_policy_loss",
    "ppo_value_loss",
    "rank_loss",
    "sequence_logps",
    "sft_loss",
    "suffix_sum",
    "token_logps",
    "whiten",
]
