"""oreo_envs: Gymnasium text environments with sparse verifiers.

``import oreo_envs`` registers every ``oreo/...`` id and loads installed plug-ins, then
``gymnasium.make("oreo/GSM8K-v0", path="test.jsonl")`` works.
"""

from oreo_envs.core import TextEnv, TextSpace, env_kind, kind_of, step_delimiters_of
from oreo_envs.math_env import MathEnv, format_prompt, split_steps
from oreo_envs.registration import ENTRY_POINT_GROUP, list_envs, load_plugins, register
from oreo_envs.tasks import MathTask, TaskDataError

__all__ = [
    "ENTRY_POINT_GROUP",
    "MathEnv",
    "MathTask",
    "TaskDataError",
    "TextEnv",
    "TextSpace",
    "env_kind",
    "kind_of",
    "format_prompt",
    "list_envs",
    "load_plugins",
    "register",
    "split_steps",
    "step_delimiters_of",
]

# Step limit for step-level math episodes; response-level episodes end after one action anyway.
MATH_MAX_STEPS = 32

register(
    "oreo/GSM8K-v0",
    "oreo_envs.math_env:MathEnv",
    description="GSM8K grade-school math, '#### N' answers (path=FILE.jsonl or the HF hub)",
    max_episode_steps=MATH_MAX_STEPS,
    kwargs={"dataset": "gsm8k"},
)
register(
    "oreo/MATH-v0",
    "oreo_envs.math_env:MathEnv",
    description="MATH competition problems, \\boxed{} answers (path=FILE.jsonl or the HF hub)",
    max_episode_steps=MATH_MAX_STEPS,
    kwargs={"dataset": "math"},
)
register(
    "oreo/GSMSymbolic-v0",
    "oreo_envs.math_env:MathEnv",
    description="GSM8K-style problems generated offline (reasoning-gym gsm_symbolic), no download",
    max_episode_steps=MATH_MAX_STEPS,
    kwargs={"dataset": "gsm8k", "source": "symbolic"},
)
register(
    "oreo/Chain-v0",
    "oreo_envs.chain_env:ChainEnv",
    description="multi-step arithmetic chains with gold solutions, for tiny models (steps=..., "
    "distractors=...), offline",
    max_episode_steps=MATH_MAX_STEPS,
)
register(
    "oreo/ReasoningGym-v0",
    "oreo_envs.reasoning_gym_env:ReasoningGymEnv",
    description="any reasoning-gym task by name (task=..., size=..., data_seed=...), offline",
    max_episode_steps=1,
)
register(
    "oreo/ALFWorld-v0",
    "oreo_envs.alfworld.env:AlfWorldEnv",
    description="ALFWorld household text games (split=train|valid_seen|valid_unseen|bundled)",
    max_episode_steps=50,  # the OREO paper evaluates with 40; pass max_episode_steps=40
)
register(
    "oreo/TextWorld-v0",
    "oreo_envs.textworld_env:TextWorldEnv",
    description="any TextWorld game (path=FILE|DIR: .z8/.ulx/.tw-pddl) or generate=CHALLENGE",
    max_episode_steps=100,
)

load_plugins()
