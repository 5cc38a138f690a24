"""The ``embodied`` block of agent-env rollout reports (oreo_agents.evaluation.embodied): its
"Nothing happens." and loop metrics on hand-made episodes with hand-computed values, the hashes,
the decoding block, pooling over seeds, and every field on real rollouts of the bundled ALFWorld
games."""

from __future__ import annotations

import hashlib
import math
from importlib import metadata
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest

from oreo_agents.evaluation.embodied import (
    across_seeds,
    decoding,
    ends_in_loop,
    episode_flags,
    episode_stats,
    game_files_sha256,
    games_sha256,
)
from oreo_agents.evaluation.evaluate import RolloutConfig, load_report, run_rollout

ALFWORLD = "oreo/ALFWorld-v0"


def steps(*pairs):
    """Logged agent steps: ``(action, raw env reply)``; the prompt's rendering differs from the
    raw reply, as it does in real episodes."""
    return [{"action": a, "observation": f"\n{o}\n> ", "env_observation": o} for a, o in pairs]


ARRIVE = "You arrive at desk 1. On the desk 1, you see a pen 1."
NOTHING = "Nothing happens."


@pytest.mark.parametrize(
    ("actions", "loop"),
    [
        (["go to desk 1", "jump", "go to bed 1", "jump", "go to bed 1"], True),  # x y x y
        (["look", "look", "look", "look"], True),  # x x x x: a cycle of one
        (["go to a", "go to b", "go to c", "go to a", "go to b"], False),  # a cycle of three
        (["look", "look", "look"], False),  # shorter than the window
        (["look", "look", "inventory", "look", "look"], False),  # x x y x x: no cycle of <= 2
        (["look ", " look", "look", "look"], True),  # compared stripped
        ([], False),
    ],
)
def test_loop_definition_on_hand_made_action_lists(actions, loop):
    assert ends_in_loop(actions) is loop


def test_nothing_happens_counts_the_raw_reply_exactly():
    episode = steps(
        ("go to desk 1", ARRIVE),
        ("jump", NOTHING),
        ("go to bed 1", "You arrive at bed 1."),
        ("jump", NOTHING),
        ("go to bed 1", " Nothing happens.\n"),  # surrounding whitespace does not matter
        ("examine bed 1", "Nothing happens. But the bed is there."),  # not the exact reply
    )
    assert episode_flags(episode) == {"nothing_happens": 3, "loop": False}
    # without env_observation (a non-agent log), the logged observation is the reply
    plain = [{"action": "jump", "observation": NOTHING}] * 4
    assert episode_flags(plain) == {"nothing_happens": 4, "loop": True}


def sample(success, n_steps, nothing, loop):
    return {"success": success, "steps": n_steps, "nothing_happens": nothing, "loop": loop}


def test_episode_stats_by_hand():
    samples = [
        sample(True, 4, 0, False),
        sample(True, 10, 2, True),  # a won episode's loop is not a failure's
        sample(False, 40, 10, True),
        sample(False, 40, 20, False),
        sample(False, 30, 3, True),
    ]
    assert episode_stats(samples) == pytest.approx(
        {
            "episodes": 5,
            "won": 2,
            "lost": 3,
            "mean_steps_won": 7.0,  # (4 + 10) / 2
            "mean_steps_lost": 110 / 3,  # (40 + 40 + 30) / 3
            "steps": 124,
            "nothing_happens": 35,
            "nothing_happens_rate": 35 / 124,  # over every step of every episode
            "lost_in_loop": 2,
            "loop_share_of_lost": 2 / 3,
        }
    )
    all_won = episode_stats([sample(True, 3, 1, False)])
    assert all_won["loop_share_of_lost"] is None and all_won["mean_steps_lost"] is None
    assert all_won["nothing_happens_rate"] == pytest.approx(1 / 3)
    assert episode_stats([])["nothing_happens_rate"] == 0.0


def test_hashes_by_hand(tmp_path):
    assert games_sha256(["a/t0", "b/t1"]) == hashlib.sha256(b"a/t0\nb/t1").hexdigest()
    assert games_sha256(["b/t1", "a/t0"]) != games_sha256(["a/t0", "b/t1"])  # order counts

    def game(task_id, files):
        folder = tmp_path / task_id
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        return SimpleNamespace(game_file=str(folder / "game.tw-pddl"))

    games = {"a/t0": game("a/t0", {"game.tw-pddl": "A", "traj_data.json": "{}"}),
             "b/t1": game("b/t1", {"game.tw-pddl": "B"})}  # fmt: skip
    env = SimpleNamespace(games=games)

    def sha(text):
        return hashlib.sha256(text.encode()).hexdigest()

    lines = sorted([f"a/t0/game.tw-pddl\t{sha('A')}", f"a/t0/traj_data.json\t{sha('{}')}",
                    f"b/t1/game.tw-pddl\t{sha('B')}"])  # fmt: skip
    expected = sha("\n".join(lines))
    assert game_files_sha256(env, ["b/t1", "a/t0"]) == expected  # the set, not the order
    (tmp_path / "b/t1/game.tw-pddl").write_text("B, edited")
    assert game_files_sha256(env, ["a/t0", "b/t1"]) != expected
    # an env whose games are files (TextWorld): each named by its task id
    (tmp_path / "g.z8").write_text("Z")
    files = SimpleNamespace(games={"g.z8": tmp_path / "g.z8"})
    assert game_files_sha256(files, ["g.z8"]) == sha(f"g.z8\t{sha('Z')}")
    assert game_files_sha256(SimpleNamespace(), ["g.z8"]) is None  # no games table: unknown


def test_decoding_block_says_how_actions_were_chosen():
    from oreo_agents.evaluation.strategies import get_strategy

    def cfg(**kw):
        rc = RolloutConfig(env=ALFWORLD, out="r.json", **{"policy": "m", **kw})
        return decoding(rc, get_strategy(rc.strategy))

    greedy = cfg(max_new_tokens=16, rank_actions=True)
    assert greedy["strategy"] == "greedy" and greedy["temperature"] == 0.0
    assert greedy["k"] == 1 and greedy["rank_actions"] and greedy["scorer"] is None
    assert greedy["max_new_tokens"] == 16 and greedy["scripted"] is None
    sampled = cfg(strategy="sample", k=3, temperature=0.7)
    assert (sampled["samples_per_game"], sampled["temperature"]) == (3, 0.7)
    guided = cfg(strategy="best-of-k", k=5, value="v", temperature=1.0)
    assert guided["scorer"] == "value" and guided["temperature"] == 1.0  # K sampled actions
    ranked = cfg(strategy="best-of-k", k=5, value="v", rank_actions=True)
    assert ranked["temperature"] == 0.0  # the K most likely actions: nothing is sampled
    expert = cfg(policy="expert")
    assert expert["scripted"] == "expert" and expert["temperature"] is None
    assert greedy["fewshot"] == 0 and cfg(fewshot=2)["fewshot"] == 2  # what the prompt showed


def report(seed, success, loop_share=0.5, **changes):
    block = {
        "split": "valid_unseen",
        "games": ["a/t0", "b/t1", "c/t2", "d/t3"],
        "games_sha256": "g" * 64,
        "game_files_sha256": "f" * 64,
        "step_cap": 40,
        "decoding": {"strategy": "greedy", "k": 1},
        "nothing_happens_rate": 0.1 * (seed + 1),
        "loop_share_of_lost": loop_share,
        "mean_steps_won": 10.0,
        "mean_steps_lost": 40.0,
    }
    env = changes.pop("env", ALFWORLD)
    block.update(changes)
    return {"env": env, "seed": seed, "success_rate": success, "embodied": block}


def test_seeds_pool_to_mean_and_sample_std_by_hand():
    pooled = across_seeds(
        [report(2, 0.5, loop_share=1.0), report(0, 0.25, loop_share=None), report(1, 0.75)]
    )
    assert pooled["seeds"] == [0, 1, 2] and pooled["games"] == 4 and pooled["step_cap"] == 40
    assert pooled["games_sha256"] == "g" * 64 and pooled["decoding"]["strategy"] == "greedy"
    success = pooled["success_rate"]
    assert success["per_seed"] == [0.25, 0.75, 0.5]  # in seed order
    assert success["mean"] == pytest.approx(0.5)
    # sample std: sqrt(((0.25 - 0.5)^2 + (0.75 - 0.5)^2 + 0) / (3 - 1)) = 0.25
    assert success["std"] == pytest.approx(0.25)
    loops = pooled["loop_share_of_lost"]  # seed 0 lost no game: no value, left out
    assert loops["per_seed"] == [None, 0.5, 1.0]
    assert loops["mean"] == pytest.approx(0.75)
    assert loops["std"] == pytest.approx(math.sqrt(2 * 0.25**2))  # n - 1 = 1
    nothing = pooled["nothing_happens_rate"]
    assert nothing["mean"] == pytest.approx(0.2) and nothing["std"] == pytest.approx(0.1)
    one = across_seeds([report(3, 0.4)])
    assert one["success_rate"] == {"mean": 0.4, "std": None, "per_seed": [0.4]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"games_sha256": "h" * 64}, "games_sha256"),
        ({"step_cap": 50}, "step_cap"),
        ({"decoding": {"strategy": "sample", "k": 1}}, "decoding"),
        ({"split": "valid_seen"}, "split"),
        ({"game_files_sha256": "e" * 64}, "game_files_sha256"),
        ({"env": "oreo/TextWorld-v0"}, "env"),
    ],
)
def test_seeds_that_differ_are_refused(change, field):
    with pytest.raises(ValueError, match=f"seeds 0 and 1 differ in {field} "):
        across_seeds([report(0, 0.5), report(1, 0.5, **change)])


def test_other_refusals():
    with pytest.raises(ValueError, match="two reports of one seed"):
        across_seeds([report(0, 0.5), report(0, 0.6)])
    with pytest.raises(ValueError, match="no 'embodied' block"):
        across_seeds([report(0, 0.5), {"env": "oreo/GSM8K-v0", "seed": 1, "success_rate": 0.1}])
    with pytest.raises(ValueError, match="at least one"):
        across_seeds([])


class Stubborn:
    """Says "jump" (answered "Nothing happens."), then "look" and "inventory" in turn: with a
    step cap of 6 it plays jump, look, inventory, look, inventory, look and ends in a loop."""

    def __init__(self, env):
        self.turn = 0

    def __call__(self, _obs, info):
        if "walkthrough" in info:  # a reset: a new episode
            self.turn = 0
        self.turn += 1
        return "jump" if self.turn == 1 else ("look", "inventory")[self.turn % 2]


def test_alfworld_rollouts_report_every_field(tmp_path):
    pytest.importorskip("alfworld")
    from rich.console import Console

    from oreo_agents.rollout.scripted import scripted_policy
    from oreo_cli.options import make_env
    from oreo_cli.rollout import run
    from oreo_envs.alfworld.data import load_split

    # the expert through the command's recipe, step cap 40 (the OREO paper's)
    options = {"split": "bundled", "max_episode_steps": 40}
    cfg = RolloutConfig(env=ALFWORLD, policy="expert", out=str(tmp_path / "e.json"),
                        env_options=options)  # fmt: skip
    console = Console(file=StringIO(), width=120)
    run(cfg, console)
    expert = load_report(cfg.out)
    block = expert["embodied"]
    games = [g.task_id for g in load_split("bundled")]
    assert block["split"] == "bundled" and block["games"] == games  # all six, in task order
    assert block["games_sha256"] == hashlib.sha256("\n".join(games).encode()).hexdigest()
    files = sorted(  # each bundled game's folder holds its game.tw-pddl only
        f"{g.task_id}/game.tw-pddl\t{hashlib.sha256(Path(g.game_file).read_bytes()).hexdigest()}"
        for g in load_split("bundled")
    )
    assert block["game_files_sha256"] == hashlib.sha256("\n".join(files).encode()).hexdigest()
    assert block["step_cap"] == 40
    assert block["versions"] == {name: metadata.version(name) for name in block["versions"]}
    assert set(block["versions"]) == {"alfworld", "textworld", "fast_downward_textworld"}
    assert block["decoding"]["strategy"] == "greedy" and block["decoding"]["k"] == 1
    assert block["decoding"]["scripted"] == "expert"
    assert all(row["success_rate"] == 1.0 for row in expert["subsets"]["task_type"].values())
    assert len(expert["subsets"]["task_type"]) == 6
    steps_of = [r["samples"][0]["steps"] for r in expert["records"]]
    assert (block["won"], block["lost"], block["episodes"]) == (6, 0, 6)
    assert block["mean_steps_won"] == pytest.approx(sum(steps_of) / 6)
    assert block["mean_steps_lost"] is None and block["loop_share_of_lost"] is None
    assert block["nothing_happens_rate"] == 0.0 and block["steps"] == sum(steps_of)
    text = console.file.getvalue()
    assert "episodes: 6 games" in text and "step cap 40" in text

    def rollout(policy_name, factory, cap, **kw):
        opts = {"split": "bundled", "max_episode_steps": cap}
        cfg = RolloutConfig(env=ALFWORLD, policy=policy_name, out="unused.json",
                            env_options=opts, **kw)  # fmt: skip
        return run_rollout(cfg, lambda: make_env(ALFWORLD, opts), scripted=factory)

    stubborn = rollout("stubborn", Stubborn, 6, tasks=2)["embodied"]
    assert len(stubborn["games"]) == 2 and stubborn["step_cap"] == 6
    assert (stubborn["won"], stubborn["lost"], stubborn["steps"]) == (0, 2, 12)
    assert stubborn["nothing_happens"] == 2 and stubborn["nothing_happens_rate"] == 2 / 12
    assert stubborn["mean_steps_lost"] == 6.0 and stubborn["loop_share_of_lost"] == 1.0

    random = rollout("random", scripted_policy("random", 0), 8)
    block = random["embodied"]
    samples = [r["samples"][0] for r in random["records"]]
    assert block["won"] + block["lost"] == 6 and block["step_cap"] == 8
    assert block["nothing_happens"] == sum(s["nothing_happens"] for s in samples)
    assert block["lost_in_loop"] == sum(s["loop"] for s in samples if not s["success"])
    assert block["decoding"]["scripted"] == "random"
    assert block["games_sha256"] == expert["embodied"]["games_sha256"]  # same games, same hash
