"""Branches (``oreo collect --branch-from``): the policy takes over logged episodes at some of
their states, after the env replays the logged actions; a branch starts exactly where its
source was (same observations, same ids), so the mean success of a state's branches is a
Monte-Carlo estimate of that state's value."""

from __future__ import annotations

import json

import gymnasium
import pytest

import oreo_envs  # noqa: F401
from oreo_agents.data.episodes import Episode, load_episodes
from oreo_agents.data.tokenization import tokenize_episode
from oreo_agents.generation.hf import HFBackend
from oreo_agents.rollout.branches import branch_states, plan_branches
from oreo_agents.rollout.collect import _branches, run_collect
from oreo_agents.rollout.config import CollectConfig

ENV = "oreo/ALFWorld-v0"
ARGS = {"split": "bundled", "max_episode_steps": 6}


def episode(task: str, sample: int, steps: int) -> Episode:
    return Episode(env_id=ENV, task_id=task, prompt="p",
                   steps=[{"action": f"a{i}", "observation": f"o{i}"} for i in range(steps)],
                   reward=0.0, success=False, meta={"sample": sample, "seed": 7})  # fmt: skip


def test_plan_draws_distinct_inner_states_and_numbers_each_tasks_branches():
    eps = [episode("t1", 0, 6), episode("t1", 1, 2), episode("t2", 0, 1)]
    plan = plan_branches(eps, states=3, samples=2, seed=0)
    # t1 sample 0: 3 of its 5 inner states; sample 1: its only one (t = 1); t2: none (1 step)
    assert sorted(k for k in plan if k[0] == "t1") == [("t1", n) for n in range(8)]
    assert not [k for k in plan if k[0] == "t2"]
    first = [plan[("t1", n)].at for n in range(6)]
    assert first[0::2] == first[1::2] and len(set(first)) == 3  # 2 branches of 3 states
    assert all(1 <= t < 6 for t in first) and first == sorted(first)
    assert [plan[("t1", n)].at for n in (6, 7)] == [1, 1]
    assert {plan[("t1", n)].reset_seed for n in (6, 7)} == {8}  # the source's seed + sample
    # the draw is a function of the episode and the seed alone
    assert branch_states(eps[0], 3, 0) == first[0::2]
    assert plan_branches(eps[:1], 3, 2, 0) == {k: v for k, v in plan.items() if v.source is eps[0]}
    assert branch_states(eps[0], 3, 1) != first[0::2] or branch_states(eps[0], 3, 2) != first[0::2]
    with pytest.raises(ValueError, match=">= 1"):
        plan_branches(eps, states=0, samples=1, seed=0)
    with pytest.raises(ValueError, match="meta 'sample'"):
        plan_branches([Episode(env_id=ENV, task_id="t", prompt="p", steps=[], reward=0.0,
                               success=False)], 1, 1, 0)  # fmt: skip


def collect(model, tok, out, **extra):
    cfg = CollectConfig(env=ENV, env_options=ARGS, model="m", out=str(out), max_new_tokens=8,
                        rank_actions=True, remind_task=True, seed=3, **extra)  # fmt: skip
    run_collect(cfg, lambda: gymnasium.make(ENV, **ARGS), backend=HFBackend(model, tok))
    return cfg


def test_branches_start_where_their_source_was(chat_model, tmp_path):
    """Each branch repeats its source's first t steps (actions, observations and ids), then
    plays on: what training reads of a branch begins with what it reads of the source."""
    model, tok = chat_model
    collect(model, tok, tmp_path / "src", tasks=2, samples=2, temperature=1.0)
    sources = {(e.task_id, e.meta["sample"]): e for e in load_episodes(tmp_path / "src")}
    collect(model, tok, tmp_path / "br", tasks=2, samples=2, temperature=1.0,
            branch_from=str(tmp_path / "src"), branch_states=2)  # fmt: skip
    branches = load_episodes(tmp_path / "br")
    plan = plan_branches(list(sources.values()), 2, 2, 3)
    assert sorted(e.key for e in branches) == sorted(plan)
    for b in branches:
        src, at = sources[(b.task_id, b.meta["branch"]["sample"])], b.meta["branch"]["at"]
        assert at == plan[b.key].at and 1 <= at < len(src.steps)
        for logged, replayed in zip(src.steps[:at], b.steps[:at], strict=True):
            assert replayed == logged
        assert len(b.steps) > at and b.prompt_ids == src.prompt_ids
        ids, src_ids = tokenize_episode(b, tok).input_ids, tokenize_episode(src, tok).input_ids
        cut = len(src.prompt_ids) + sum(
            len(s["action_ids"]) + len(s["observation_ids"]) for s in src.steps[:at]
        )
        assert ids[:cut] == src_ids[:cut]
    manifest = json.loads((tmp_path / "br" / "manifest.json").read_text())
    assert manifest["branch"] == {"from": str(tmp_path / "src"), "states": 2}
    # a re-run resumes: nothing left to do
    collect(model, tok, tmp_path / "br", tasks=2, samples=2, temperature=1.0,
            branch_from=str(tmp_path / "src"), branch_states=2)  # fmt: skip
    assert len(load_episodes(tmp_path / "br")) == len(branches)


def test_a_branch_that_cannot_retrace_its_source_is_refused(chat_model, tmp_path):
    model, tok = chat_model
    collect(model, tok, tmp_path / "src", tasks=1, samples=1)
    with pytest.raises(ValueError, match="otherwise than it was logged"):
        _without_reminder(model, tok, tmp_path)  # the source was collected with --remind-task
    # a logged observation the env does not give again
    path = next((tmp_path / "src").glob("episodes-*.jsonl"))
    record = json.loads(path.read_text().splitlines()[0])
    record["steps"][0]["env_observation"] = "You see a dragon."
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match="does not retrace"):
        collect(model, tok, tmp_path / "b", tasks=1, branch_from=str(tmp_path / "src"))
    cfg = CollectConfig(env="oreo/Chain-v0", model="m", out="", branch_from=str(tmp_path / "src"))
    with pytest.raises(ValueError, match="not of --env"):
        _branches(cfg)


def _without_reminder(model, tok, tmp_path):
    cfg = CollectConfig(env=ENV, env_options=ARGS, model="m", out=str(tmp_path / "a"),
                        max_new_tokens=8, rank_actions=True, seed=3, tasks=1,
                        branch_from=str(tmp_path / "src"))  # fmt: skip
    run_collect(cfg, lambda: gymnasium.make(ENV, **ARGS), backend=HFBackend(model, tok))
