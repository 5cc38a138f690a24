"""oreo/ALFWorld-v0: bundled games, bad input, side effects, and parity with ALFWorld's own env on
the real games when the shared data is present."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import pytest

import oreo_envs  # noqa: F401 - registers the ids
from oreo_envs.alfworld import TASK_TYPES, HandcodedExpert, WalkthroughExpert
from oreo_envs.alfworld.data import load_split

pytest.importorskip("alfworld")

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "alfworld"
needs_data = pytest.mark.skipif(not (SHARED / "json_2.1.1").is_dir(), reason="no shared data")


def make(**kwargs):
    return gymnasium.make("oreo/ALFWorld-v0", **kwargs)


def play(env, policy, task_id, limit=60):
    obs, info = env.reset(options={"task_id": task_id})
    trace = [(obs, info["admissible_actions"])]
    for _ in range(limit):
        obs, reward, terminated, truncated, info = env.step(policy(obs, info))
        trace.append((obs, info["admissible_actions"]))
        if terminated or truncated:
            break
    return reward, terminated, info, trace


@pytest.fixture(scope="module")
def bundled():
    env = make(split="bundled")
    yield env
    env.close()


def test_bundled_has_one_game_per_task_type(bundled):
    games = bundled.unwrapped.games.values()
    assert sorted(g.task_type for g in games) == sorted(TASK_TYPES)


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_bundled_game_is_won_by_its_walkthrough(bundled, task_type):
    (task_id,) = [t for t, g in bundled.unwrapped.games.items() if g.task_type == task_type]
    reward, terminated, info, _ = play(bundled, WalkthroughExpert(), task_id)
    assert (reward, terminated, info["success"], info["won"]) == (1.0, True, True, True)
    assert info["task_type"] == task_type and info["task_id"] == task_id


def test_reset_shows_room_and_task_without_banner(bundled):
    obs, info = bundled.reset(options={"task_id": _task(bundled, "pick_and_place_simple")})
    assert obs.startswith("You are in the middle of a room.")
    assert obs.endswith("Your task is to: put some book on sidetable.")
    assert "Welcome" not in obs
    assert info["walkthrough"][0] == "go to bed 1" and "look" in info["admissible_actions"]
    assert info["game_file"].endswith("game.tw-pddl") and info["won"] is False


def test_invalid_command_is_nothing_happens(bundled):
    _, info = bundled.reset(options={"task_id": _task(bundled, "pick_and_place_simple")})
    for action in ["fly to the moon", "", "take book 1 from bed 1", "🙂" * 50]:
        obs, reward, terminated, truncated, step_info = bundled.step(action)
        assert (obs, reward, terminated, truncated) == ("Nothing happens.", 0.0, False, False)
        assert step_info["admissible_actions"] == info["admissible_actions"]


def test_old_put_verb_is_accepted(bundled):
    bundled.reset(options={"task_id": _task(bundled, "pick_and_place_simple")})
    for action in ["go to bed 1", "take book 1 from bed 1", "go to sidetable 1"]:
        bundled.step(action)
    obs, reward, terminated, _, info = bundled.step("put book 1 in/on sidetable 1")
    assert obs == "You move the book 1 to the sidetable 1." and reward == 1.0 and terminated


def test_admissible_actions_are_new_lists(bundled):
    _, a = bundled.reset(options={"task_id": _task(bundled, "pick_and_place_simple")})
    _, _, _, _, b = bundled.step("look")
    assert a["admissible_actions"] == b["admissible_actions"]
    assert a["admissible_actions"] is not b["admissible_actions"]


def test_same_seed_same_game_order():
    def order(seed):
        env = make(split="bundled")
        ids = [env.reset(seed=seed)[1]["task_id"]] + [env.reset()[1]["task_id"] for _ in range(5)]
        return ids

    assert order(3) == order(3)
    assert sorted(order(3)) == sorted(load_split("bundled")[i].task_id for i in range(6))


def test_task_type_filter():
    env = make(split="bundled", task_types=["look_at_obj_in_light", "pick_two_obj_and_place"])
    assert {g.task_type for g in env.unwrapped.games.values()} == {
        "look_at_obj_in_light",
        "pick_two_obj_and_place",
    }


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"split": "test"}, ValueError, "unknown ALFWorld split"),
        ({"split": "bundled", "task_types": ["pick_and_cook"]}, ValueError, "task type"),
        ({"split": "valid_seen", "data_dir": "/nonexistent"}, FileNotFoundError, "bundled"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        make(**kwargs)


def test_missing_data_says_how_to_get_it():
    with pytest.raises(FileNotFoundError, match="alfworld-download"):
        make(split="train", data_dir="/nonexistent")


def test_unknown_task_id(bundled):
    with pytest.raises(ValueError, match="unknown task_id"):
        bundled.reset(options={"task_id": "nope/trial"})


def _fake_split(tmp_path, content: str) -> Path:
    trial = tmp_path / "json_2.1.1" / "valid_seen" / "pick_and_place_simple-X-None-Y-1" / "t1"
    trial.mkdir(parents=True)
    (trial / "game.tw-pddl").write_text(content)
    return tmp_path


def test_corrupt_game_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="corrupt ALFWorld game file"):
        make(split="valid_seen", data_dir=_fake_split(tmp_path, "{not json"))


def test_untranslatable_game_is_a_clear_error(tmp_path):
    data_dir = _fake_split(tmp_path, json.dumps({"pddl_problem": "(define", "solvable": True}))
    env = make(split="valid_seen", data_dir=data_dir)
    with pytest.raises(ValueError, match="cannot load ALFWorld game"):
        env.reset()


def test_no_side_effects_on_the_caller(tmp_path):
    """sys.argv survives the planner, no ~/.cache/alfworld appears, ALFWORLD_DATA stays unset."""
    code = (
        "import os, sys, gymnasium, oreo_envs\n"
        "assert 'textworld' not in sys.modules and 'alfworld' not in sys.modules\n"
        "argv = list(sys.argv)\n"
        "env = gymnasium.make('oreo/ALFWorld-v0', split='bundled')\n"
        "env.reset(seed=0); env.step('look')\n"
        "assert sys.argv == argv, sys.argv\n"
        "assert 'ALFWORLD_DATA' not in os.environ\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ALFWORLD_DATA"}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert not (tmp_path / ".cache" / "alfworld").exists()


def _task(env, task_type):
    return next(t for t, g in env.unwrapped.games.items() if g.task_type == task_type)


# --- the real games ------------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize(
    "split, size", [("valid_seen", 140), ("valid_unseen", 134), ("eval_in_distribution", 140)]
)
def test_real_splits_have_the_published_size(split, size):
    assert len(load_split(split, SHARED)) == size


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("split", ["valid_seen", "valid_unseen"])
def test_real_games_match_alfworlds_own_env(split):
    """One game per task type: won by its walkthrough, with ALFWorld's exact texts."""
    from oreo_envs.alfworld.reference import ReferenceEnv

    env = make(split=split, data_dir=str(SHARED))
    games = env.unwrapped.games
    sample = [next(t for t, g in games.items() if g.task_type == tt) for tt in TASK_TYPES]
    for task_id in sample:
        reward, terminated, info, trace = play(env, WalkthroughExpert(), task_id)
        assert (reward, terminated, info["success"]) == (1.0, True, True), task_id
        ref = ReferenceEnv(games[task_id].game_file)
        expected = [ref.reset()] + [ref.step(a) for a in ref.walkthrough]
        assert trace == expected, task_id


@needs_data
def test_handcoded_expert_wins_a_real_game():
    env = make(split="valid_seen", data_dir=str(SHARED))
    task_id = _task(env, "pick_heat_then_place_in_recep")
    reward, terminated, info, _ = play(env, HandcodedExpert(env), task_id)
    assert info["success"]


def test_repeated_reset_replays_identically(bundled):
    task_id = _task(bundled, "pick_two_obj_and_place")
    first = play(bundled, WalkthroughExpert(), task_id)[3]
    bundled.reset(options={"task_id": task_id})
    bundled.step("go to desk 1")
    assert play(bundled, WalkthroughExpert(), task_id)[3] == first


def test_translation_is_kept_on_disk_and_replays_identically(tmp_path, monkeypatch):
    """A second process (here: an emptied in-memory cache) reads the translation from disk
    instead of running fast-downward, and plays the game exactly as a fresh translation does; a
    damaged entry is translated again."""
    from oreo_envs.alfworld import engine

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(engine, "_GAMES", engine.OrderedDict())
    env = make(split="bundled")
    task_id = _task(env, "pick_clean_then_place_in_recep")
    fresh = play(env, WalkthroughExpert(), task_id)
    (entry,) = engine.sas_cache_dir().rglob("*.sas.z")

    engine._GAMES.clear()
    fd = engine.engine_imports()["fast_downward"]
    calls = []
    original = fd.pddl2sas
    monkeypatch.setattr(fd, "pddl2sas", lambda *a, **k: calls.append(1) or original(*a, **k))
    cached = play(make(split="bundled"), WalkthroughExpert(), task_id)
    assert calls == [] and cached[:2] == fresh[:2] == (1.0, True) and cached[3] == fresh[3]

    engine._GAMES.clear()
    entry.write_bytes(b"damaged")
    again = play(make(split="bundled"), WalkthroughExpert(), task_id)
    assert calls == [1] and again[3] == fresh[3]
    assert entry.read_bytes() != b"damaged"  # rewritten whole


def test_a_planted_cache_file_runs_nothing(tmp_path, monkeypatch):
    """The translation cache holds text: a pickle planted where a translation is looked up
    (the old cache's format, and the new file name) is never unpickled."""
    import pickle
    import zlib

    from oreo_envs.alfworld import engine

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(engine, "_GAMES", engine.OrderedDict())
    env = make(split="bundled")
    task_id = _task(env, "pick_and_place_simple")
    fresh = play(env, WalkthroughExpert(), task_id)
    (entry,) = engine.sas_cache_dir().rglob("*.sas.z")
    planted = zlib.compress(pickle.dumps((Payload(), "begin_version")))
    entry.write_bytes(planted)
    entry.with_name(entry.name.replace(".sas.z", ".pkl.z")).write_bytes(planted)
    engine._GAMES.clear()
    again = play(make(split="bundled"), WalkthroughExpert(), task_id)
    assert not marker.exists()
    assert again[3] == fresh[3]  # the planted entry was translated again


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('touch MARKER')", "o.__class__", "open('MARKER', 'w')", "9**9**9**9"],
)
def test_a_game_grammar_cannot_run_code(tmp_path, monkeypatch, expression):
    """TextWorld ``eval``s a grammar's ``{python}`` symbols; oreo evaluates only names, fields,
    ``and`` / ``or``, ``+`` and constants, and refuses a game whose grammar asks for more."""
    from oreo_envs.alfworld import engine

    marker = tmp_path / "pwned"
    expression = expression.replace("MARKER", str(marker))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(engine, "_GAMES", engine.OrderedDict())
    game = next(Path(engine.__file__).parent.glob("games/**/game.tw-pddl"))
    data = engine.read_game(game)
    assert "{o.name}" in data["grammar"]
    data["grammar"] = data["grammar"].replace("{o.name}", "{" + expression + "}")
    crafted = tmp_path / "game.tw-pddl"
    crafted.write_text(json.dumps(data))
    eng = engine.AlfredEngine()
    eng.load(crafted)
    with pytest.raises(ValueError, match="grammar expression .* is not allowed"):
        eng.reset()
        for command in eng.walkthrough:
            eng.step(command)
    assert not marker.exists()


def test_grammar_expressions_evaluate_as_python_does():
    from types import SimpleNamespace

    from oreo_envs.alfworld.grammar import _evaluate, _expression

    r = SimpleNamespace(name="", id="drawer 1")
    o = SimpleNamespace(name="apple", indefinite="an")
    variables = {"r": r, "o": o}
    cases = ("o.name", "r.name or r.id", "o.indefinite + ' ' + o.name", "r.name and o.name", "o")
    for text in cases:
        assert _evaluate(_expression(text), variables) == eval(text, {}, variables)


def _fake_train(root: Path, tasks: int = 64) -> Path:
    game = json.dumps({"solvable": True})
    for i in range(tasks):
        for trial in ("trial_a", "trial_b"):
            folder = root / "json_2.1.1" / "train" / f"pick_and_place_simple-Obj{i}-None-R-1"
            (folder / trial).mkdir(parents=True)
            (folder / trial / "game.tw-pddl").write_text(game)
    return root


def test_train_heldout_and_train_fit_carve_train_by_task(tmp_path):
    """The two carved splits partition train and keep a task's trials on one side; the
    held-out tasks are those whose name's SHA-256 starts with a byte below 16 (found apart
    from the code for these 64 names: Obj0, Obj6, Obj8 and Obj61)."""
    from oreo_envs.alfworld.data import load_split

    data_dir = _fake_train(tmp_path)
    train = {g.task_id for g in load_split("train", data_dir)}
    fit = {g.task_id for g in load_split("train_fit", data_dir)}
    held = {g.task_id for g in load_split("train_heldout", data_dir)}
    assert len(train) == 128 and fit | held == train and not fit & held
    names = {f"pick_and_place_simple-Obj{i}-None-R-1" for i in (0, 6, 8, 61)}
    assert held == {f"{n}/{t}" for n in names for t in ("trial_a", "trial_b")}


def test_heldout_examples_come_from_the_fit_part(tmp_path):
    """Few-shot examples for a held-out game (settings are chosen there) never come from the
    held-out tasks; for train they may come from any other train game."""
    from oreo_envs.alfworld.data import load_split
    from oreo_envs.alfworld.demos import ExpertDemos

    data_dir = _fake_train(tmp_path)
    held = [g.task_id for g in load_split("train_heldout", data_dir)]
    fit = {g.task_id for g in load_split("train_fit", data_dir)}
    picks = ExpertDemos("train_heldout", data_dir).candidates(held[0], "pick_and_place_simple", 0)
    assert {g.task_id for g in picks} == fit
    picks = ExpertDemos("train", data_dir).candidates(held[0], "pick_and_place_simple", 0)
    assert len(picks) == 127 and set(held[1:]) <= {g.task_id for g in picks}


def test_translator_warnings_stay_off_stdout(tmp_path, capfd, monkeypatch):
    """Many train games state a fact twice, and fast-downward's parser prints a warning on
    stdout for each: a collect over train games printed hundreds of lines. A bundled game with
    one fact doubled stands in for them, loaded twice: translated, then read from the SAS
    cache (what later processes do)."""
    from oreo_envs.alfworld import engine

    games = Path(oreo_envs.__file__).parent / "alfworld" / "games"
    game = json.loads(sorted(games.glob("*/*/game.tw-pddl"))[0].read_text())
    doubled = "(canContain DeskType PenType)"
    assert doubled in game["pddl_problem"]
    game["pddl_problem"] = game["pddl_problem"].replace(doubled, doubled + "\n" + doubled, 1)
    data_dir = _fake_split(tmp_path / "data", json.dumps(game))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for _ in range(2):
        engine._GAMES.clear()
        env = make(split="valid_seen", data_dir=data_dir)
        env.reset(seed=0)
        env.step("look")
    assert capfd.readouterr().out == ""
