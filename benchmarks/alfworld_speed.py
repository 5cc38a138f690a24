"""ALFWorld engine speed: oreo's env against ALFWorld's own, replaying every walkthrough of
valid_seen and valid_unseen (274 games), then oreo's env in an `EnvPool` with N worker processes.

Usage (needs the alfworld extra and the game files)::

    ALFWORLD_DATA=../shared/data/alfworld python benchmarks/alfworld_speed.py --jobs 0 1 2 4

Prints tables; asserts nothing. ``--every K`` replays every K-th game for a quicker run.

The parallel table is what collection sees: ``--envs`` envs (default 8) replay the walkthroughs
in lock-step, as `oreo collect --env-workers N` drives them. Each round resets every env to its
next game (all resets in parallel; cold, since every game is new to its worker) and then steps
all envs together until their walkthroughs end. Resets and steps are timed apart, so "steps/s"
is the steady-state stepping rate without game loads. N = 0 is the same loop in this process.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import gymnasium

import oreo_envs  # noqa: F401 - registers the ids
from oreo_envs.alfworld.data import load_split
from oreo_envs.alfworld.reference import ReferenceEnv
from oreo_envs.vector import EnvPool, reset_all, step_all

SPLITS = ("valid_seen", "valid_unseen")


def games(data_dir, every):
    """(split, task_id, game_file) of every ``every``-th game of both eval splits."""
    out = [(s, g.task_id, g.game_file) for s in SPLITS for g in load_split(s, data_dir)]
    return out[::every]


def run_oreo(chunk, data_dir):
    """Replay walkthroughs in oreo's env; returns (wins, resets, reset_s, steps, step_s)."""
    envs = {s: gymnasium.make("oreo/ALFWorld-v0", split=s, data_dir=data_dir) for s in SPLITS}
    wins = steps = 0
    reset_s = step_s = 0.0
    for split, task_id, _ in chunk:
        env = envs[split]
        t = time.perf_counter()
        _, info = env.reset(options={"task_id": task_id})
        reset_s += time.perf_counter() - t
        t = time.perf_counter()
        for action in info["walkthrough"]:
            _, _, terminated, _, info = env.step(action)
            steps += 1
        step_s += time.perf_counter() - t
        wins += bool(terminated and info["success"])
    return wins, len(chunk), reset_s, steps, step_s


def run_reference(chunk):
    """The same replays in ALFWorld's own env (load + reset counted as the reset)."""
    wins = steps = 0
    reset_s = step_s = 0.0
    for _, _, game_file in chunk:
        t = time.perf_counter()
        env = ReferenceEnv(game_file)
        env.reset()
        reset_s += time.perf_counter() - t
        t = time.perf_counter()
        for action in env.walkthrough:
            env.step(action)
            steps += 1
        step_s += time.perf_counter() - t
        wins += env.won
    return wins, len(chunk), reset_s, steps, step_s


def row(name, result):
    wins, n, reset_s, steps, step_s = result
    return f"{name:<18} {wins:>4}/{n:<4} {steps / step_s:>10.1f} {n / reset_s:>10.2f}"


def make_env(split, data_dir):
    return gymnasium.make("oreo/ALFWorld-v0", split=split, data_dir=data_dir)


def run_lockstep(chunk, data_dir, workers, n_envs):
    """Replay ``chunk`` in ``n_envs`` envs stepped in lock-step, in ``workers`` processes (0: this
    one); returns (wins, resets, reset_s, steps, step_s, wall_s)."""
    wins = steps = resets = 0
    reset_s = step_s = 0.0
    t_all = time.perf_counter()
    for split in SPLITS:
        games_ = [task_id for s, task_id, _ in chunk if s == split]
        make = partial(make_env, split, data_dir)
        pool = EnvPool(make, n_envs, workers) if workers else None
        envs = pool.envs if pool else [make() for _ in range(n_envs)]
        for start in range(0, len(games_), n_envs):
            batch = games_[start : start + n_envs]
            live = envs[: len(batch)]
            t = time.perf_counter()
            infos = [i for _, i in reset_all(live, [{"options": {"task_id": g}} for g in batch])]
            reset_s += time.perf_counter() - t
            resets += len(batch)
            plans = [info["walkthrough"] for info in infos]
            t = time.perf_counter()
            for k in range(max(len(p) for p in plans)):
                idx = [j for j, p in enumerate(plans) if k < len(p)]
                results = step_all([live[j] for j in idx], [plans[j][k] for j in idx])
                steps += len(idx)
                for r, j in zip(results, idx, strict=True):
                    wins += k == len(plans[j]) - 1 and bool(r[2] and r[4]["success"])
            step_s += time.perf_counter() - t
        if pool:
            pool.close()
    return wins, resets, reset_s, steps, step_s, time.perf_counter() - t_all


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="default: $ALFWORLD_DATA")
    parser.add_argument("--every", type=int, default=1, help="replay every K-th game")
    parser.add_argument("--jobs", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--envs", type=int, default=8, help="envs stepped in lock-step")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    todo = games(args.data_dir, args.every)
    print(f"{len(todo)} games (valid_seen + valid_unseen), walkthrough replays, one process")
    print(f"{'env':<18} {'wins':>9} {'steps/s':>10} {'resets/s':>10}")
    oreo = run_oreo(todo, args.data_dir)
    print(row("oreo (cold)", oreo))
    print(row("oreo (warm)", run_oreo(todo[-4:], args.data_dir)))  # still in the game cache
    if not args.skip_reference:
        print(row("alfworld", run_reference(todo)))
    print(f"\n{args.envs} envs in lock-step (oreo collect --env-workers N)")
    print(f"{'workers':<8} {'wins':>9} {'steps/s':>10} {'resets/s':>10} {'wall s':>8}")
    for n in args.jobs:
        wins, resets, reset_s, steps, step_s, wall = run_lockstep(todo, args.data_dir, n, args.envs)
        print(
            f"{n:<8} {wins:>4}/{resets:<4} {steps / step_s:>10.1f} {resets / reset_s:>10.2f} "
            f"{wall:>8.1f}"
        )


if __name__ == "__main__":
    main()
