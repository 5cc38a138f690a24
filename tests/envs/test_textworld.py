"""oreo/TextWorld-v0: generated games, files and folders, won/lost, bad input."""

from __future__ import annotations

import shutil
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
