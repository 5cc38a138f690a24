"""``oreo/TextWorld-v0``: any TextWorld game as a Gymnasium text env (optional extra:
``pip install 'oreo[alfworld]'``, which brings textworld).

Games come from a file or a folder (``.z8`` / ``.ulx`` compiled by TextWorld, ``.tw-pddl``), or
are generated offline by one of TextWorld's ``tw-make`` challenges
(``generate="tw-coin_collector"``, ``"tw-treasure_hunter"``, ``"tw-cooking"``, ``"tw-simple"``)
and cached on disk, one game per seed. Reward is sparse: 1.0 when the game is won; a lost game
ends with 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from oreo_envs.core import TextEnv
from oreo_envs.core import cache_dir as oreo_cache_dir

GAME_EXTENSIONS = (".z8", ".ulx", ".tw-pddl")
INSTALL_HINT = "pip install 'oreo[alfworld]'"
MAX_COMMAND_CHARS = 190


def _textworld():
    try:
        import textworld
        import textworld.challenges
    except ImportError as e:
        raise ImportError(f"TextWorld envs need textworld ({e}); install: {INSTALL_HINT}") from e
    return textworld


@contextlib.contextmanager
def _quiet_engine():
    """Put back ``sys.argv`` (TextWorld's PDDL backend overwrites it) and silence jericho's
    warning that TextWorld's own games lack score detection (TextWorld tracks the score)."""
    argv = list(sys.argv)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is not fully supported")
            yield
    finally:
        sys.argv[:] = argv


def find_games(path: str | os.PathLike) -> dict[str, Path]:
    """Game files under ``path`` (a file or a folder, searched recursively), by task id (the
    path relative to the folder, or the file name).

    Raises:
        FileNotFoundError: Nothing there, or no game file in the folder.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return {path.name: path}
    if not path.is_dir():
        raise FileNotFoundError(f"no TextWorld game file or folder at {path}")
    games = {
        str(p.relative_to(path)): p
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name.endswith(GAME_EXTENSIONS)
    }
    if not games:
        raise FileNotFoundError(f"no game files ({', '.join(GAME_EXTENSIONS)}) under {path}")
    return games


def generate_games(
    challenge: str, settings: dict[str, Any], num_games: int, cache_dir: str | os.PathLike | None
) -> Path:
    """Generate ``num_games`` games of a TextWorld challenge (seeds 0..n-1), reusing cached ones.

    Returns:
        The folder holding the games.
    """
    tw = _textworld()
    name = challenge if challenge.startswith("tw-") else f"tw-{challenge}"
    if name not in tw.challenges.CHALLENGES:
        known = sorted(tw.challenges.CHALLENGES)
        raise ValueError(f"unknown TextWorld challenge {challenge!r}; use one of {known}")
    base = Path(cache_dir or oreo_cache_dir())
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    folder = base.expanduser() / "textworld" / f"{name}-{key}"
    _, make, _ = tw.challenges.CHALLENGES[name]
    for seed in range(num_games):
        target = folder / f"seed{seed:04d}.z8"
        if target.exists():
            continue
        options = tw.GameOptions()
        options.seeds = seed
        options.path = str(target)
        options.force_recompile = True
        with _quiet_engine():
            game = make(dict(settings), options)
            tw.generator.compile_game(game, options)
    return folder


class TextWorldEnv(TextEnv):
    """TextWorld games (Côté et al. 2018) with admissible commands.

    Args:
        path: A game file or a folder of them.
        generate: Instead of ``path``, a challenge name ("tw-coin_collector", ...).
        settings: The challenge's settings (e.g. ``{"level": 5}`` for coin collector and
            treasure hunter; ``{"recipe": 2, "take": 1, "go": 6, ...}`` for cooking).
            Default ``{"level": 1}``.
        num_games: How many games to generate (seeds 0..n-1).
        cache_dir: Where generated games are kept (default ``~/.cache/oreo``).
        render_mode: None or "ansi".

    ``info`` carries ``admissible_actions``, ``won``, ``lost``, ``score``, ``max_score`` and, on
    reset, the game's ``walkthrough`` (empty when the game has none).
    """

    kind = "agent"

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        generate: str | None = None,
        settings: dict[str, Any] | None = None,
        num_games: int = 10,
        cache_dir: str | os.PathLike | None = None,
        render_mode: str | None = None,
    ):
        if (path is None) == (generate is None):
            raise ValueError("TextWorld-v0 needs exactly one of path=FILE|DIR or generate=NAME")
        if num_games < 1:
            raise ValueError(f"num_games must be >= 1, got {num_games}")
        if generate is not None:
            path = generate_games(generate, settings or {"level": 1}, num_games, cache_dir)
        self.games = find_games(path)
        super().__init__(list(self.games), render_mode=render_mode)
        self._env = None
        self._state = None

    def _start(self, task_id: str) -> tuple[str, dict[str, Any]]:
        tw = _textworld()
        infos = tw.EnvInfos(
            admissible_commands=True, won=True, lost=True, score=True, max_score=True
        )
        infos.extras = ["walkthrough"]
        if self._env is not None:
            self._env.close()
        with _quiet_engine():
            try:
                self._env = tw.start(str(self.games[task_id]), infos)
                self._state = self._env.reset()
            except Exception as e:
                raise ValueError(f"cannot load TextWorld game {self.games[task_id]}: {e}") from e
        info = self._info()
        info["walkthrough"] = list(self._state.get("extra.walkthrough") or [])
        return strip_banner(self._state.feedback), info

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        with _quiet_engine():
            self._state, _, done = self._env.step(self._command(action))
        info = self._info()
        won = bool(self._state["won"])
        ended = won or bool(self._state["lost"]) or bool(done)
        if ended:
            info["success"] = won
        return self._state.feedback.strip(), float(won), ended, info

    def _command(self, action: str) -> str:
        """One line; for Z-machine / Glulx games ASCII without backslashes and at most
        `MAX_COMMAND_CHARS` (the interpreter's input buffer, which fails on longer or non-ASCII
        input). A backslash hangs or crashes Jericho's interpreter: ``\\S`` never returns and
        ``a\\S`` sent twice kills the process with a segmentation fault (jericho 3.3.1, textworld
        1.7; every other ASCII punctuation mark is safe), so it becomes a space."""
        if self.games[self.task_id].suffix == ".tw-pddl":
            return " ".join(action.split())
        command = " ".join(action.replace("\\", " ").split())
        return command.encode("ascii", "replace").decode()[:MAX_COMMAND_CHARS]

    def _info(self) -> dict[str, Any]:
        s = self._state
        return {
            "game_file": str(self.games[self.task_id]),
            "admissible_actions": list(s["admissible_commands"] or []),
            "won": bool(s["won"]),
            "lost": bool(s["lost"]),
            "score": s["score"],
            "max_score": s["max_score"],
        }

    def close(self):
        if self._env is not None:
            self._env.close()
            self._env = None


def strip_banner(text: str) -> str:
    """The intro without TextWorld's ASCII-art title (lines drawn with ``$$``)."""
    lines = text.split("\n")
    art = [i for i, line in enumerate(lines) if "$$" in line]
    return "\n".join(lines[art[-1] + 1 :] if art else lines).strip()
