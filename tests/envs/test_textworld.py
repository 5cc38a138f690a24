"""oreo/TextWorld-v0: generated games, files and folders, won/lost, bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys

import gymnasium
import pytest

import oreo_envs  # noqa: F401 - registers the ids

pytest.importorskip("textworld")


@pytest.fixture(scope="module")
def games(tmp_path_factory):
    cache = tmp_path_factory.mktemp("tw")
    env = gymnasium.make(
        "oreo/TextWorld-v0", generate="coin_collector", num_games=2, cache_dir=str(cache)
    )
    yield env, cache
    env.close()


def test_generated_game_is_won_by_its_walkthrough(games):
    env, _ = games
    argv = list(sys.argv)
    obs, info = env.reset(seed=0)
    assert "$$" not in obs and "coin" in obs
    assert info["walkthrough"] and "look" in info["admissible_actions"]
    for action in info["walkthrough"]:
        obs, reward, terminated, truncated, info = env.step(action)
    assert (reward, terminated, info["success"], info["won"]) == (1.0, True, True, True)
    assert sys.argv == argv


def test_generated_games_are_cached(games):
    env, cache = games
    files = sorted(cache.rglob("*.z8"))
    assert len(files) == 2
    stamp = files[0].stat().st_mtime_ns
    again = gymnasium.make(
        "oreo/TextWorld-v0", generate="tw-coin_collector", num_games=2, cache_dir=str(cache)
    )
    assert files[0].stat().st_mtime_ns == stamp
    assert len(again.unwrapped.task_ids) == 2


def test_file_and_folder_paths(games, tmp_path):
    _, cache = games
    game = sorted(cache.rglob("*.z8"))[0]
    for sidecar in game.parent.glob(game.stem + ".*"):
        shutil.copy(sidecar, tmp_path / sidecar.name)
    one = gymnasium.make("oreo/TextWorld-v0", path=str(tmp_path / game.name))
    assert one.unwrapped.task_ids == [game.name]
    folder = gymnasium.make("oreo/TextWorld-v0", path=str(tmp_path))
    obs, info = folder.reset(seed=1)
    obs, reward, terminated, truncated, info = folder.step("dance wildly 🙂" * 30)
    assert reward == 0.0 and not terminated


def test_bad_input():
    with pytest.raises(ValueError, match="exactly one"):
        gymnasium.make("oreo/TextWorld-v0")
    with pytest.raises(FileNotFoundError):
        gymnasium.make("oreo/TextWorld-v0", path="/nonexistent/game.z8")
    with pytest.raises(ValueError, match="unknown TextWorld challenge"):
        gymnasium.make("oreo/TextWorld-v0", generate="tw-chess")


def test_backslash_neither_hangs_nor_crashes_the_interpreter(games):
    """Jericho never returns from ``\\S`` and segfaults on ``a\\S`` sent twice; run in a child
    process so that a hang or a crash fails this test instead of killing the suite."""
    _, cache = games
    script = (
        "import sys, gymnasium, oreo_envs\n"
        "env = gymnasium.make('oreo/TextWorld-v0', generate='coin_collector', num_games=2,"
        " cache_dir=sys.argv[1])\n"
        "env.reset(seed=0)\n"
        "for action in ['a\\\\S', 'a\\\\S', '\\\\S', '?\\\\S \\\\x', 'look']:\n"
        "    obs, reward, terminated, truncated, info = env.step(action)\n"
        "print(obs)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(cache)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "coin" in done.stdout.lower() or "=-" in done.stdout  # the room described by "look"
