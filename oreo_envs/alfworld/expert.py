"""Expert policies for ALFWorld: the SFT demonstrations (the paper's ETO trajectories are not
available, so oreo collects its own).

Both are plain callables ``policy(observation, info) -> action`` fed the env's outputs:

- `WalkthroughExpert` replays the game's walkthrough (``info["walkthrough"]`` on reset); it wins
  every game of the published splits.
- `HandcodedExpert` runs ALFWorld's hand-coded expert, which reacts to what it observes (it
  explores receptacles rather than knowing where objects are), as in ALFWorld's DAgger setup.
  It needs the game's ``traj_data.json``, so it works on the valid splits and not on the train
  archive or the bundled games.
"""

from __future__ import annotations

from typing import Any

from oreo_envs.alfworld.engine import _contained_side_effects, engine_imports

FALLBACK_ACTION = "look"
INTRO_BANNER = "-= Welcome to TextWorld, ALFRED! =-"


class WalkthroughExpert:
    """Follows each game's walkthrough: the i-th call after a reset returns its i-th command.

    A reset is recognized by ``"walkthrough"`` in ``info`` (only reset infos carry it). Past the
    end of the walkthrough it says ``"look"``.

    Example::

        env = gymnasium.make("oreo/ALFWorld-v0", split="train")
        policy = WalkthroughExpert()
        obs, info = env.reset(seed=0)
        while True:
            obs, reward, terminated, truncated, info = env.step(policy(obs, info))
            if terminated or truncated:
                break
    """

    def __init__(self):
        self._plan: list[str] = []
        self._cursor = 0

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        if "walkthrough" in info:
            self._plan, self._cursor = list(info["walkthrough"]), 0
        if self._cursor >= len(self._plan):
            return FALLBACK_ACTION
        self._cursor += 1
        return self._plan[self._cursor - 1]


class HandcodedExpert:
    """ALFWorld's hand-coded expert (``HandCodedTWAgent``), driven by the env's engine state.

    Args:
        env: The `AlfWorldEnv` (or a wrapper of it) being played; the expert reads the current
            facts from its engine, as ALFWorld's ``AlfredExpert`` wrapper does.
        max_steps: The expert's own step budget.

    Raises:
        FileNotFoundError: On reset, when the game has no ``traj_data.json`` beside it.
    """

    def __init__(self, env, max_steps: int = 150):
        self.env = env.unwrapped
        self.max_steps = max_steps
        self._agent = None
        self._prev = ""

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        engine_imports()
        with _contained_side_effects():
            from alfworld.agents.expert import (
                HandCodedAgentFailed,
                HandCodedAgentTimeout,
                HandCodedTWAgent,
            )

        engine = self.env.engine
        state = {
            "feedback": observation,
            "admissible_commands": list(info["admissible_actions"]),
            "facts": engine.facts(),
            "won": bool(info.get("won", False)),
        }
        if "walkthrough" in info:  # a new episode
            self._agent = HandCodedTWAgent(max_steps=self.max_steps)
            self._agent.reset(info["game_file"])
            # The agent recognizes the intro by its banner, which the env strips.
            self._agent.observe(f"{INTRO_BANNER}\n\n{observation}")
            self._prev = FALLBACK_ACTION
            action = FALLBACK_ACTION
        else:
            try:
                action = self._agent.act(state, 0, state["won"], self._prev)
            except (HandCodedAgentTimeout, HandCodedAgentFailed):  # it gave up
                action = FALLBACK_ACTION
            if action not in state["admissible_commands"]:
                action = FALLBACK_ACTION
        self._prev = action
        return action
