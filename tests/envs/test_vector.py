"""`oreo_envs.vector`: env copies in worker processes behave exactly like local envs."""

from __future__ import annotations

import gymnasium
import pytest

import oreo_envs  # noqa: F401
from oreo_envs.vector import EnvPool, RemoteEnv, reset_all, step_all

CHAIN = {"size": 20, "granularity": "step", "split": "train"}


def make_chain():
    return gymnasium.make("oreo/Chain-v0", **CHAIN)


def gold_steps(env, task_id):
    from oreo_envs.math_env import split_steps

    u = env.unwrapped
    return split_steps(" " + u.task(task_id).solution, u.step_delimiters)


def play(envs, task_ids):
    """Reset each env to a task and feed its gold steps in lock-step; every result, in order."""
    template = envs[0]
    log = reset_all(envs, [{"seed": 3, "options": {"task_id": t}} for t in task_ids])
    plans = [gold_steps(template, t) for t in task_ids]
    for step in range(max(len(p) for p in plans)):
        live = [i for i, p in enumerate(plans) if step < len(p)]
        log += step_all([envs[i] for i in live], [plans[i][step] for i in live])
    return log


def test_pool_results_equal_local_envs():
    local = [make_chain() for _ in range(4)]
    task_ids = list(local[0].unwrapped.task_ids[:4])
    expected = play(local, task_ids)
    with EnvPool(make_chain, n=4, workers=2) as pool:
        assert pool.workers == 2 and all(isinstance(e, RemoteEnv) for e in pool.envs)
        assert play(pool.envs, task_ids) == expected
        # Static metadata comes from the local template.
        assert pool.envs[3].unwrapped.task_ids == local[0].unwrapped.task_ids
    assert any(r[1] == 1.0 for r in expected if len(r) == 5)  # the gold steps win


def test_env_error_is_raised_in_the_caller_and_the_pool_stays_usable():
    with EnvPool(make_chain, n=3, workers=2) as pool:
        calls = [{"options": {"task_id": t}} for t in ("0", "no-such-task", "1")]
        with pytest.raises(ValueError, match="no-such-task"):
            reset_all(pool.envs, calls)
        obs, info = pool.envs[1].reset(options={"task_id": "2"})
        assert info["task_id"] == "2" and obs


def test_calls_in_flight_are_checked():
    with EnvPool(make_chain, n=1, workers=1) as pool:
        env = pool.envs[0]
        with pytest.raises(RuntimeError, match="without a call"):
            env.wait()
        env.reset_async(options={"task_id": "0"})
        with pytest.raises(RuntimeError, match="already in flight"):
            env.step_async("a=1")
        env.wait()
        with pytest.raises(ValueError, match="once per parallel call"):
            step_all([env, env], ["x", "y"])


def test_close_stops_the_workers_and_refuses_calls():
    pool = EnvPool(make_chain, n=2, workers=2)
    procs = list(pool._procs)
    pool.close()
    pool.close()  # twice is fine
    assert not any(p.is_alive() for p in procs)
    with pytest.raises(RuntimeError, match="closed"):
        pool.envs[0].reset()


def broken():
    raise OSError("no game files here")


def test_a_worker_that_cannot_build_its_env_fails_loudly():
    with pytest.raises(RuntimeError, match="could not build") as err:
        EnvPool(broken, n=2, workers=2, template=make_chain())
    assert "no game files here" in str(err.value.__cause__)


def test_bad_sizes():
    with pytest.raises(ValueError, match="n >= 1"):
        EnvPool(make_chain, n=0, workers=1)


def test_mixed_local_and_pooled_envs_step_together():
    with EnvPool(make_chain, n=1, workers=1) as pool:
        envs = [make_chain(), pool.envs[0]]
        (o1, _), (o2, _) = reset_all(envs, [{"options": {"task_id": "5"}}] * 2)
        assert o1 == o2


def test_collect_with_env_workers_writes_the_same_episodes(tmp_path):
    pytest.importorskip("alfworld")
    from oreo_agents.data.episodes import load_episodes
    from oreo_agents.rollout.collect import CollectConfig, run_collect
    from oreo_agents.rollout.scripted import scripted_policy

    def make():
        return gymnasium.make("oreo/ALFWorld-v0", split="bundled")

    stores = {}
    for workers in (0, 2):
        cfg = CollectConfig(
            env="oreo/ALFWorld-v0", model="expert", out=str(tmp_path / f"w{workers}"),
            env_options={"split": "bundled"}, samples=2, batch_size=4, env_workers=workers,
        )  # fmt: skip
        run_collect(cfg, make, scripted=scripted_policy("expert", 0))
        eps = load_episodes(cfg.out)
        stores[workers] = sorted(
            (e.task_id, e.meta["sample"], e.prompt, tuple(map(str, e.steps)), e.success)
             for e in eps
        )  # fmt: skip
    assert len(stores[0]) == 12 and all(row[-1] for row in stores[0])
    assert stores[2] == stores[0]


def test_proxies_answer_static_metadata_and_refuse_per_episode_state():
    with EnvPool(make_chain, n=2, workers=1) as pool:
        remote = pool.envs[0]
        remote.reset(options={"task_id": pool.template.unwrapped.task_ids[3]})
        assert remote.unwrapped.task_ids == pool.template.unwrapped.task_ids
        assert remote.unwrapped.granularity == "step" and remote.unwrapped.kind == "answer"
        assert oreo_envs.env_kind(remote) == "answer"
        assert remote.spec.id == "oreo/Chain-v0"
        # the template was never reset: its task_id would be a stale None
        with pytest.raises(AttributeError, match="'task_id' is not static metadata"):
            _ = remote.unwrapped.task_id
