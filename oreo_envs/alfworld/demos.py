"""Solved episodes of ALFWorld games for few-shot agent prompts, from the games' walkthroughs.

ReAct (Yao et al. 2023) and the prompting baselines after it show an instruction-tuned model
two solved episodes of the same task type as the game it plays, taken from the train split.
`ExpertDemos` builds such episodes here, by replaying the expert walkthrough of train games in
the engine, so the examples read exactly as the agent's own turns (the same engine, the same
observations) and no hand-written transcript file is needed.

Which games: for an evaluation split (valid_seen, valid_unseen), train games only, and each
choice is checked against the evaluation split's games, so an example is never a game the
agent is scored on. For split "train", other train games. For split "bundled" (oreo's six small
games, one per task type, for offline tests), the other bundled games: as no other bundled game
shares the played game's task type, the examples are of other types there.

The choice is deterministic: a function of (seed, task id) only, so a resumed, sharded or
re-batched run shows the same examples, and every sample of a task shows the same ones.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

from oreo_envs.alfworld.data import GameEntry, canonical_split, load_split
from oreo_envs.registration import make_env

# Splits whose games are evaluated on: examples must never come from them.
EVALUATION_SPLITS = ("valid_seen", "valid_unseen")


@dataclass(frozen=True)
class Demo:
    """One solved episode: the game's id and type, its first observation and its
    ``(action, observation)`` steps as the env returned them."""

    task_id: str
    task_type: str
    first_observation: str
    steps: tuple[tuple[str, str], ...]


class ExpertDemos:
    """Walkthrough episodes of the games an evaluation on ``split`` may show as examples.

    Args:
        split: The split being played (its examples come from train, or from the other
            bundled games for "bundled"; module docstring).
        data_dir: ALFWorld's data folder (as `oreo_envs.alfworld.AlfWorldEnv` takes it).
        max_steps: A walkthrough longer than this is cut and the game skipped as unsolved.

    Raises:
        FileNotFoundError: The train games are not unpacked in the data folder.
    """

    def __init__(
        self, split: str, data_dir: str | os.PathLike | None = None, *, max_steps: int = 100
    ):
        self.split = canonical_split(split)
        # held-out train games are played to choose settings: their examples come from the rest
        self.source = {"bundled": "bundled", "train_heldout": "train_fit"}.get(self.split, "train")
        self.data_dir, self.max_steps = data_dir, max_steps
        self.pool = load_split(self.source, data_dir)
        evaluated = load_split(self.split, data_dir) if self.split in EVALUATION_SPLITS else []
        self.evaluation = frozenset(g.task_id for g in evaluated)
        self.evaluation_files = frozenset(os.path.realpath(g.game_file) for g in evaluated)
        # a data folder whose train and evaluation splits share a game keeps it out
        self._allowed = [g for g in self.pool if not self._evaluated(g)]
        self._env: Any = None
        self._played: dict[str, Demo | None] = {}

    def candidates(self, task_id: str, task_type: str, seed: int) -> list[GameEntry]:
        """The games that may serve as examples for ``task_id``, in the seeded order they are
        tried: never ``task_id`` itself nor a game of the evaluated split, the same task type
        first (the only ones outside "bundled")."""
        rng = random.Random(f"{seed}/{task_id}")  # a str seed is hashed with SHA-512: stable
        allowed = [g for g in self._allowed if g.task_id != task_id]
        same = [g for g in allowed if g.task_type == task_type]
        rng.shuffle(same)
        if self.source != "bundled":
            return same
        others = [g for g in allowed if g.task_type != task_type]
        rng.shuffle(others)
        return same + others

    def _evaluated(self, game: GameEntry) -> bool:
        """Whether ``game`` is one of the evaluated split's (by id, or by file)."""
        if not self.evaluation:
            return False
        return game.task_id in self.evaluation or (
            os.path.realpath(game.game_file) in self.evaluation_files
        )

    def examples(self, task_id: str, task_type: str, n: int, seed: int) -> list[Demo]:
        """``n`` solved episodes to show before ``task_id`` (module docstring).

        Raises:
            ValueError: Fewer than ``n`` solvable games to choose from.
            RuntimeError: A chosen game is the played one or an evaluation game (a bug: the
                candidates exclude them).
        """
        chosen: list[Demo] = []
        for game in self.candidates(task_id, task_type, seed):
            if len(chosen) == n:
                break
            self._check(game, task_id)
            demo = self.play(game)
            if demo is not None:
                chosen.append(demo)
        if len(chosen) < n:
            raise ValueError(
                f"only {len(chosen)} solved {self.source} games of type {task_type!r} to show "
                f"before {task_id}; asked for {n} few-shot examples"
            )
        return chosen

    def _check(self, game: GameEntry, task_id: str) -> None:
        if game.task_id == task_id:
            raise RuntimeError(f"few-shot example {game.task_id} is the game being played")
        if self._evaluated(game):
            raise RuntimeError(
                f"few-shot example {game.task_id} is a game of the evaluated split {self.split}"
            )

    def play(self, game: GameEntry) -> Demo | None:
        """The game's walkthrough played in the engine (cached); None when it does not win."""
        if game.task_id not in self._played:
            self._played[game.task_id] = self._play(game)
        return self._played[game.task_id]

    def _play(self, game: GameEntry) -> Demo | None:
        if self._env is None:  # through the registry: this module and the env's do not
            # import each other (the env makes an ExpertDemos)
            options = {"split": self.source, "data_dir": self.data_dir}
            self._env = make_env("oreo/ALFWorld-v0", options).unwrapped
        observation, info = self._env.reset(options={"task_id": game.task_id})
        steps = []
        for action in info["walkthrough"][: self.max_steps]:
            reply, _, terminated, _, _ = self._env.step(action)
            steps.append((action, reply))
            if terminated:
                return Demo(game.task_id, game.task_type, observation, tuple(steps))
        return None

    def close(self) -> None:
        """Close the engine that plays the examples."""
        if self._env is not None:
            self._env.close()
            self._env = None
