"""ALFWorld engine speed: oreo's env against ALFWorld's own, replaying every walkthrough of
valid_seen and valid_unseen (274 games), then oreo's env steps/s with N parallel processes.

Usage (needs the alfworld extra and the game files)::

    ALFWORLD_DATA=../shared/data/alfworld python benchmarks/alfworld_speed.py --jobs 1 2 4

Prints a table; asserts nothing. ``--every K`` replays every K-th game for a quicker run.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import gymnasium

import oreo_envs  # noqa: F401 - registers the ids
from oreo_envs.alfworld.data import load_split
from oreo_envs.alfworld.reference import ReferenceEnv

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="default: $ALFWORLD_DATA")
    parser.add_argument("--every", type=int, default=1, help="replay every K-th game")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
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
    print(f"\n{'processes':<10} {'env steps/s':>12} {'wall s':>8}")
    for n in args.jobs:
        chunks = [todo[i::n] for i in range(n)]
        t = time.perf_counter()
        with ProcessPoolExecutor(n) as pool:
            results = list(pool.map(run_oreo, chunks, [args.data_dir] * n))
        wall = time.perf_counter() - t
        total_steps = sum(r[3] for r in results)
        print(f"{n:<10} {total_steps / wall:>12.1f} {wall:>8.1f}")


if __name__ == "__main__":
    main()
