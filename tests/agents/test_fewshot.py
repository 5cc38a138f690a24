"""Few-shot ALFWorld prompts (``--fewshot N``): which games are shown, and that the shown
episodes reach the model and the store exactly.

The train / evaluation rules run on a data folder written here (ALFWorld's layout holding copies
of the bundled games), so they need neither the real data nor the engine; the examples that are
played and rendered come from the bundled games."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED_DATA, oreo_in_process
from oreo_agents.data.episodes import load_episodes
from oreo_agents.rollout.agent_prompt import AgentPrompt, Example
from oreo_envs.alfworld.data import BUNDLED_DIR, TASK_TYPES
from oreo_envs.alfworld.demos import ExpertDemos

BUNDLED = sorted(p.name for p in BUNDLED_DIR.iterdir() if p.is_dir())
TRIALS = 5  # train trials per task type: 120 orders, so two seeds rarely agree on all six
# a train game that the evaluation split holds too (its id, in both): never an example
SHARED = f"{BUNDLED[0]}/trial_T0"


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the split indexes


def copy_game(task: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(BUNDLED_DIR / task / "trial_oreo_0" / "game.tw-pddl", dest)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """``json_2.1.1/train`` with `TRIALS` copies of each bundled game, ``valid_unseen`` with one
    (under another task folder), plus `SHARED` in both."""
    root = tmp_path / "alfworld"
    for task in BUNDLED:
        for t in range(TRIALS):
            copy_game(task, root / "json_2.1.1/train" / task / f"trial_T{t}" / "game.tw-pddl")
        copy_game(task, root / "json_2.1.1/valid_unseen" / f"{task}-eval/trial_E0/game.tw-pddl")
    copy_game(BUNDLED[0], root / "json_2.1.1/valid_unseen" / SHARED / "game.tw-pddl")
    return root


def test_examples_are_train_games_of_the_played_type_never_evaluated_ones(data_dir):
    demos = ExpertDemos("valid_unseen", data_dir)
    assert demos.source == "train" and SHARED in demos.evaluation
    train = {g.task_id: g.task_type for g in demos.pool}
    evaluated = _split(data_dir, "valid_unseen")
    assert len(evaluated) == len(TASK_TYPES) + 1
    for task_id, task_type in evaluated.items():
        chosen = demos.candidates(task_id, task_type, seed=0)
        assert chosen and {g.task_type for g in chosen} == {task_type}
        assert all(g.task_id in train and g.task_id not in evaluated for g in chosen)
        assert SHARED not in {g.task_id for g in chosen}
        assert len(chosen) == (TRIALS - 1 if task_type == train[SHARED] else TRIALS)
    evaluated_game = next(g for g in _entries(data_dir, "valid_unseen") if g.task_id == SHARED)
    with pytest.raises(RuntimeError, match="evaluated split valid_unseen"):
        demos._check(evaluated_game, "x/y")  # the guard every chosen game passes


def _entries(data_dir, split):
    from oreo_envs.alfworld.data import load_split

    return load_split(split, data_dir)


def _split(data_dir, split) -> dict[str, str]:
    return {g.task_id: g.task_type for g in _entries(data_dir, split)}


def test_the_choice_is_stable_for_a_seed_and_moves_with_it(data_dir):
    tasks = _split(data_dir, "valid_unseen")

    def order(seed):
        demos = ExpertDemos("valid_unseen", data_dir)  # a new instance: nothing cached
        return {t: [g.task_id for g in demos.candidates(t, ty, seed)] for t, ty in tasks.items()}

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_train_and_bundled_never_show_the_played_game(data_dir):
    train = ExpertDemos("train", data_dir)
    for game in train.pool[:TRIALS]:
        chosen = train.candidates(game.task_id, game.task_type, 0)
        assert game.task_id not in {g.task_id for g in chosen} and len(chosen) == TRIALS - 1
    bundled = ExpertDemos("bundled")
    assert bundled.source == "bundled" and not bundled.evaluation
    for game in bundled.pool:  # one game per type: the other five, in a seeded order
        chosen = [g.task_id for g in bundled.candidates(game.task_id, game.task_type, 0)]
        assert sorted(chosen) == sorted(g.task_id for g in bundled.pool if g != game)


def test_missing_train_games_are_named(data_dir):
    shutil.rmtree(data_dir / "json_2.1.1/train")
    with pytest.raises(FileNotFoundError, match="split 'train'"):
        ExpertDemos("valid_unseen", data_dir)


def test_played_examples_are_solved_walkthroughs(data_dir):
    pytest.importorskip("alfworld")
    demos = ExpertDemos("valid_unseen", data_dir)
    task_id, task_type = f"{BUNDLED[1]}-eval/trial_E0", BUNDLED[1].split("-")[0]
    (demo,) = demos.examples(task_id, task_type, 1, seed=0)
    assert demo.task_type == task_type and demo.task_id.startswith(f"{BUNDLED[1]}/trial_T")
    assert "Your task is to:" in demo.first_observation and len(demo.steps) >= 2
    assert demos.examples(task_id, task_type, 1, seed=0) == [demo]  # cached, the same
    with pytest.raises(ValueError, match=f"only {TRIALS} solved train games"):
        demos.examples(task_id, task_type, TRIALS + 1, seed=0)
    demos.close()


def test_real_valid_unseen_games_get_train_examples_of_their_type(tmp_path):
    """On ALFWorld's own data (skipped without it): the train games of one type, unpacked here
    from the shared archive, beside the shared valid_unseen games."""
    pytest.importorskip("alfworld")
    shared = SHARED_DATA / "alfworld"
    archive = shared / "train_game_files.tar.xz"
    if not (archive.is_file() and (shared / "json_2.1.1/valid_unseen").is_dir()):
        pytest.skip("ALFWorld's data is not beside the project")
    kind = "look_at_obj_in_light"
    subprocess.run(["tar", "-xJf", str(archive), "-C", str(tmp_path), "--wildcards",
                    f"json_2.1.1/train/{kind}-*"], check=True)  # fmt: skip
    (tmp_path / "json_2.1.1/valid_unseen").symlink_to(shared / "json_2.1.1/valid_unseen")
    demos = ExpertDemos("valid_unseen", tmp_path)
    evaluated = [g for g in _entries(tmp_path, "valid_unseen") if g.task_type == kind]
    assert len(demos.pool) > 100 and evaluated
    for game in evaluated:
        chosen = demos.candidates(game.task_id, kind, 0)
        assert len(chosen) == len(demos.pool)  # the two splits share no game
        assert not {g.task_id for g in chosen} & demos.evaluation
    shown = demos.examples(evaluated[0].task_id, kind, 2, seed=0)
    assert len({d.task_id for d in shown}) == 2 and {d.task_type for d in shown} == {kind}
    assert all(d.task_id in {g.task_id for g in demos.pool} for d in shown)
    demos.close()


COLLECT = ("--env", "oreo/ALFWorld-v0", "--split", "bundled", "--max-new-tokens", "6",
           "--constrain-actions", "-o", "max_episode_steps=2", "--tasks", "2")  # fmt: skip


def test_collect_stores_exactly_the_prompt_with_its_examples(tiny_model_dir, tmp_path):
    pytest.importorskip("alfworld")
    out = tmp_path / "eps"
    args = ("collect", *COLLECT, "--model", str(tiny_model_dir), "-k", "2", "--fewshot", "1")
    run = oreo_in_process(*args, "--out", out)
    assert run.returncode == 0, run.stdout + run.stderr
    episodes = load_episodes(out)
    assert len(episodes) == 4
    demos = ExpertDemos("bundled")
    games = {g.task_id: g for g in demos.pool}
    for e in episodes:
        (shown,) = e.meta["fewshot"]
        assert shown != e.task_id and shown in games  # another bundled game
        (demo,) = demos.examples(e.task_id, games[e.task_id].task_type, 1, seed=0)
        assert demo.task_id == shown  # the same choice, made again
        history = [(s["action"], s["env_observation"]) for s in e.steps]
        prompt = AgentPrompt().with_examples([Example(demo.first_observation, demo.steps)])
        assert e.prompt + e.response == prompt.render(e.info["first_observation"], history)
        assert e.prompt.count("Example 1:") == 1 and "Example 2:" not in e.prompt
    by_task = {}
    for e in episodes:  # both samples of a task show the same game
        by_task.setdefault(e.task_id, set()).add(e.meta["fewshot"][0])
    assert all(len(s) == 1 for s in by_task.values())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fewshot"]["n"] == 1 and manifest["fewshot"]["source_split"] == "bundled"
    # another number of examples is another run: refused, not mixed into the store
    other = oreo_in_process(*args[:-1], "2", "--out", out)
    assert other.returncode == 2 and "'fewshot'" in other.stdout, other.stdout
    demos.close()


def test_rollout_report_names_the_examples(tiny_model_dir, tmp_path):
    pytest.importorskip("alfworld")
    out = tmp_path / "report.json"
    run = oreo_in_process("rollout", *COLLECT, "--policy", str(tiny_model_dir), "--fewshot", "2",
                          "--out", out)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["config"]["fewshot"] == 2 and report["embodied"]["decoding"]["fewshot"] == 2
    for record in report["records"]:
        (sample,) = record["samples"]
        assert len(sample["fewshot"]) == 2 and record["task_id"] not in sample["fewshot"]


def test_envs_without_demonstrations_refuse_fewshot_on_one_line(tmp_path):
    run = oreo_in_process("collect", "--env", "oreo/GSMSymbolic-v0", "-o", "size=10", "--policy",
                          "gold", "--fewshot", "1", "--out", tmp_path / "x")  # fmt: skip
    assert run.returncode == 2
    assert "has no expert demonstrations" in run.stdout and "Traceback" not in run.stdout
