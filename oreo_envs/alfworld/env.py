"""``oreo/ALFWorld-v0``: ALFWorld's household text games as a Gymnasium text env.

An episode is one game: the first observation is the room and the task ("You are in the middle of
a room... Your task is to: put a clean mug in coffeemachine."), each action is one command ("go to
countertop 1"), each observation the engine's feedback. Reward 1.0 and ``terminated`` when the
task is done; the step limit (50 by default, ``max_episode_steps``) truncates.
"""

from __future__ import annotations

import os
import re
from typing import Any

from oreo_envs.alfworld.data import has_data, load_split
from oreo_envs.alfworld.demos import ExpertDemos
from oreo_envs.alfworld.engine import AlfredEngine, strip_banner
from oreo_envs.core import TextEnv

# "put X in/on Y" (the 2.1.1 games' verb, used by ReAct, ETO and the OREO paper's prompts)
_PUT = re.compile(r"^put (.+?) (?:in/on|in|on|into) (.+)$")


class AlfWorldEnv(TextEnv):
    """ALFWorld's TextWorld games (Shridhar et al. 2021), the OREO paper's agent benchmark.

    Args:
        split: "train", "valid_seen", "valid_unseen" (ALFWorld's "eval_in_distribution" /
            "eval_out_of_distribution" work too), "train_fit" / "train_heldout" (train without
            and with only a fixed 6% of its tasks, for choosing settings; see
            `oreo_envs.alfworld.data`) or "bundled" (oreo's own six small games, no
            download). Default: "valid_unseen" (the paper's Table 2) when a data dir holds
            ALFWorld's games, else "bundled".
        data_dir: The folder ``alfworld-download`` fills (``json_2.1.1/<split>/...``); default
            ``$ALFWORLD_DATA``, else ``~/.cache/alfworld``.
        task_types: Keep only these task types (a list, or a comma-separated string).
        render_mode: None or "ansi".

    ``info`` carries ``task_id`` (``<task>/<trial>``), ``task_type``, ``game_file``,
    ``admissible_actions``, ``won`` and, on reset, the game's ``walkthrough``.
    """

    kind = "agent"

    def __init__(
        self,
        split: str | None = None,
        *,
        data_dir: str | os.PathLike | None = None,
        task_types: list[str] | str | None = None,
        render_mode: str | None = None,
    ):
        if split is None:
            split = "valid_unseen" if data_dir is not None or has_data() else "bundled"
        self.games = {g.task_id: g for g in load_split(split, data_dir, task_types)}
        self.split, self.data_dir = split, data_dir
        super().__init__(list(self.games), render_mode=render_mode)
        self._engine = None

    @property
    def engine(self):
        """The `AlfredEngine` playing the current game (created on first reset)."""
        if self._engine is None:
            self._engine = AlfredEngine()
        return self._engine

    def expert_demos(self) -> ExpertDemos:
        """Walkthrough episodes of train games (other bundled games for "bundled"), never of
        an evaluated game: the few-shot examples an agent prompt may show (``--fewshot N``).

        Raises:
            FileNotFoundError: The train games are not in the data folder.
        """
        return ExpertDemos(self.split, self.data_dir)

    def _start(self, task_id: str) -> tuple[str, dict[str, Any]]:
        game = self.games[task_id]
        self.engine.load(game.game_file)
        obs = strip_banner(self.engine.reset())
        info = self._info()
        info["walkthrough"] = self.engine.walkthrough
        return obs, info

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        engine = self.engine
        obs = engine.step(self.normalize_action(action))
        info = self._info()
        if engine.won:
            info["success"] = True
        return obs, float(engine.won), engine.won, info

    def normalize_action(self, action: str) -> str:
        """The engine's command for an action: stripped, and "put X in/on Y" read as
        "move X to Y" when that is admissible."""
        action = action.strip()
        admissible = self.engine.admissible_commands
        m = _PUT.match(action)
        if action in admissible or m is None:
            return action
        moved = f"move {m.group(1)} to {m.group(2)}"
        return moved if moved in admissible else action

    def _info(self) -> dict[str, Any]:
        game = self.games[self.task_id]
        return {
            "task_type": game.task_type,
            "game_file": game.game_file,
            "admissible_actions": list(self.engine.admissible_commands),
            "won": bool(self.engine.won),
        }
