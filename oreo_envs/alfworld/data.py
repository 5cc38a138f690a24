"""ALFWorld game files: where they live, which splits exist, and a cached index of each split.

The layout is the one ``alfworld-download`` writes: ``<data_dir>/json_2.1.1/<split>/<task>/<trial>/
game.tw-pddl`` (plus ``traj_data.json`` for the eval splits). Train games ship in the shared data
as ``train_game_files.tar.xz``; unpack it into the data dir with
``tar -xJf train_game_files.tar.xz -C <data_dir>``.

A split is indexed once: reading thousands of game files to apply ALFWorld's filter takes
seconds, so the index is kept in memory and in ``$XDG_CACHE_HOME/oreo/alfworld`` (default
``~/.cache/oreo/alfworld``), keyed by the split folder and the modification times that change
when games are added or removed.

Two splits are carved out of train, for choosing settings without looking at the evaluation
splits: ``train_heldout``, the train games of the tasks whose folder name's SHA-256 falls in
the first 1/`HELDOUT_PARTS` of its range (about 6%: 214 of the 3,553 games), and ``train_fit``,
the rest. The rule reads only the task folder's name, so every trial of a task (the same room,
objects and goal) is on one side, and the carve is the same on every machine and data order.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from oreo_envs.core import cache_dir, write_cache_file

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
SPLITS = ("train", "train_fit", "train_heldout", "valid_seen", "valid_unseen", "bundled")
HELDOUT_PARTS = 16  # train_heldout: tasks whose name's SHA-256 starts in the first 1/16
# ALFWorld's own names for the eval splits.
SPLIT_ALIASES = {
    "eval_in_distribution": "valid_seen",
    "eval_out_of_distribution": "valid_unseen",
}
GAME_FILE = "game.tw-pddl"
BUNDLED_DIR = Path(__file__).parent / "games"
_INDEX_VERSION = 1
_memory: dict[tuple, list[GameEntry]] = {}


@dataclass(frozen=True)
class GameEntry:
    """One game of a split: its task id (``<task>/<trial>``), task type and file."""

    task_id: str
    task_type: str
    game_file: str


def canonical_split(split: str) -> str:
    """The split's name, with ALFWorld's eval names mapped to ours.

    Raises:
        ValueError: An unknown split.
    """
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        known = list(SPLITS) + list(SPLIT_ALIASES)
        raise ValueError(f"unknown ALFWorld split {split!r}; use one of {known}")
    return split


def check_task_types(task_types) -> tuple[str, ...] | None:
    """Validate a task-type filter (None or a name / list of names of the six types)."""
    if task_types is None:
        return None
    if isinstance(task_types, str):
        task_types = [t for t in task_types.split(",") if t]
    unknown = [t for t in task_types if t not in TASK_TYPES]
    if unknown or not task_types:
        raise ValueError(f"unknown ALFWorld task type(s) {unknown}; use some of {list(TASK_TYPES)}")
    return tuple(task_types)


def default_data_dir() -> Path:
    """``$ALFWORLD_DATA``, else ``~/.cache/alfworld`` (where ``alfworld-download`` writes)."""
    return Path(os.environ.get("ALFWORLD_DATA") or "~/.cache/alfworld").expanduser()


def has_data(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether a data dir holds ALFWorld's ``json_2.1.1`` folder."""
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    return (root / "json_2.1.1").is_dir()


def split_dir(split: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of a split's games.

    Raises:
        FileNotFoundError: The folder is missing; the message says how to get the data.
    """
    if split == "bundled":
        return BUNDLED_DIR
    if split in ("train_fit", "train_heldout"):
        split = "train"
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = root / "json_2.1.1" / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no ALFWorld games for split {split!r} at {folder}. Get them with "
            "`alfworld-download` (needs internet), or point data_dir= / $ALFWORLD_DATA at a "
            "folder holding json_2.1.1/ (for train: `tar -xJf train_game_files.tar.xz -C "
            "<data_dir>`). split='bundled' works offline with oreo's own small games."
        )
    return folder


def _keep(task_dir: str, game_file: Path) -> bool:
    """ALFWorld's filter: no movable or sliced tasks, and only games marked solvable."""
    if "movable" in task_dir or "Sliced" in task_dir or not game_file.is_file():
        return False
    try:
        with open(game_file) as f:
            return bool(json.load(f).get("solvable", False))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"corrupt ALFWorld game file {game_file}: {e}") from None


def _scan(folder: Path) -> list[GameEntry]:
    entries = []
    for task in sorted(p for p in folder.iterdir() if p.is_dir()):
        task_type = task.name.split("-", 1)[0]
        if task_type not in TASK_TYPES:
            continue
        for trial in sorted(p for p in task.iterdir() if p.is_dir()):
            game_file = trial / GAME_FILE
            if _keep(task.name, game_file):
                entries.append(GameEntry(f"{task.name}/{trial.name}", task_type, str(game_file)))
    return entries


def _fingerprint(folder: Path) -> list:
    """Modification times that change when a task or trial folder is added or removed."""
    tasks = sorted(os.scandir(folder), key=lambda e: e.name)
    return [folder.stat().st_mtime_ns] + [e.stat().st_mtime_ns for e in tasks if e.is_dir()]


def _cache_file(folder: Path) -> Path:
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "alfworld" / f"index-{digest}.json"


def index_split(folder: Path) -> list[GameEntry]:
    """The games of a split folder that pass ALFWorld's filter, from the cache when it is fresh.

    Raises:
        ValueError: A game file is not valid JSON.
    """
    folder = folder.resolve()
    fingerprint = _fingerprint(folder)
    key = (str(folder), tuple(fingerprint))
    if key in _memory:
        return _memory[key]
    cache = _cache_file(folder)
    entries = None
    try:
        stored = json.loads(cache.read_text())
        if stored["version"] == _INDEX_VERSION and stored["fingerprint"] == fingerprint:
            entries = [GameEntry(**e) for e in stored["games"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or a stale or damaged one: rescan
    if entries is None:
        entries = _scan(folder)
        payload = {"version": _INDEX_VERSION, "fingerprint": fingerprint}
        payload["games"] = [asdict(e) for e in entries]
        write_cache_file(cache, json.dumps(payload).encode())  # read-only home: rescan next time
    _memory[key] = entries
    return entries


def load_split(
    split: str,
    data_dir: str | os.PathLike | None = None,
    task_types: tuple[str, ...] | None = None,
) -> list[GameEntry]:
    """The games of a split, optionally only some task types, sorted by task id.

    Raises:
        ValueError: Unknown split or task type, or no game left after the filter.
        FileNotFoundError: The split's folder is missing.
    """
    split = canonical_split(split)
    task_types = check_task_types(task_types)
    entries = index_split(split_dir(split, data_dir))
    if split in ("train_fit", "train_heldout"):
        entries = [e for e in entries if is_heldout(e.task_id) == (split == "train_heldout")]
    if task_types is not None:
        entries = [e for e in entries if e.task_type in task_types]
    if not entries:
        raise ValueError(f"no ALFWorld games in split {split!r} for task types {task_types}")
    return entries


def is_heldout(task_id: str) -> bool:
    """Whether a train game belongs to ``train_heldout`` (module docstring): by its task
    folder's name (``task_id`` up to its ``/trial``), so a task's trials stay together."""
    task = task_id.split("/", 1)[0]
    return hashlib.sha256(task.encode()).digest()[0] < 256 // HELDOUT_PARTS
