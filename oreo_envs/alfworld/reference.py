"""ALFWorld's own text env on one game, as the reference oreo's engine is checked and timed
against: TextWorld's ``PddlEnv`` with ALFWorld's wrappers, configured as ``AlfredTWEnv`` does
for evaluation (no domain randomization)."""

from __future__ import annotations

from oreo_envs.alfworld.engine import _contained_side_effects, engine_imports, strip_banner


class ReferenceEnv:
    """One game in ALFWorld's own env; `reset` and `step` return ``(observation, admissible)``
    as oreo's env shows them (the intro without its banner, feedback as is).

    Args:
        game_file: A ``game.tw-pddl`` file with its domain and grammar inside.
    """

    def __init__(self, game_file: str):
        engine_imports()
        with _contained_side_effects():
            import textworld
            from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

            infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["walkthrough"])
            wrappers = [AlfredDemangler(shuffle=False), AlfredInfos]
            self._env = textworld.start(game_file, infos, wrappers=wrappers)
        self.walkthrough: list[str] = []
        self.won = False

    def reset(self) -> tuple[str, list[str]]:
        with _contained_side_effects():
            state = self._env.reset()
        self.walkthrough = list(state["extra.walkthrough"])
        self.won = bool(state["won"])
        return strip_banner(state.feedback), list(state["admissible_commands"])

    def step(self, command: str) -> tuple[str, list[str]]:
        with _contained_side_effects():
            state, _, _ = self._env.step(command)
        self.won = bool(state["won"])
        return state.feedback, list(state["admissible_commands"])
