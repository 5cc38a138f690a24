"""ALFWorld as a Gymnasium text env (optional extra: pip install oreo[alfworld]).

``oreo/ALFWorld-v0`` is `AlfWorldEnv`; `WalkthroughExpert` and `HandcodedExpert` are expert
policies for demonstrations. The engine (textworld, fast-downward, alfworld) loads on first reset.
"""

from oreo_envs.alfworld.data import SPLITS, TASK_TYPES
from oreo_envs.alfworld.env import AlfWorldEnv
from oreo_envs.alfworld.expert import HandcodedExpert, WalkthroughExpert

__all__ = ["SPLITS", "TASK_TYPES", "AlfWorldEnv", "HandcodedExpert", "WalkthroughExpert"]
