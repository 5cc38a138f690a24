"""The sandboxed reasoning-gym scorer against the library's own, in-process: same verdicts, and
what the worker costs per answer.

For every reasoning-gym task (or those named), scores each of the first ``--entries`` entries'
gold answer and a wrong answer both ways and counts disagreements; then times ``--repeats``
scorings of one task's gold answers both ways, side by side in this process.

    python benchmarks/sandbox_scoring.py                      # all tasks, about 3 minutes
    python benchmarks/sandbox_scoring.py --tasks n_queens arc_agi
"""

from __future__ import annotations

import argparse
import time

from oreo_envs.reasoning_gym_env import _encode
from oreo_envs.sandbox import SandboxedScorer

FACTORY = "oreo_envs.reasoning_gym_env:make_scorer"


def in_process(dataset, answer: str, entry: dict) -> float:
    try:
        return float(dataset.score_answer(answer, entry))
    except Exception:  # the env counts a scorer's error as wrong
        return 0.0


def parity(names: list[str], entries: int) -> tuple[int, list[tuple]]:
    import reasoning_gym

    compared, disagreements = 0, []
    for name in names:
        try:
            dataset = reasoning_gym.create_dataset(name, size=entries, seed=0)
        except Exception as e:  # noqa: BLE001 - a generator that needs options we do not pass
            print(f"skipped {name}: {type(e).__name__}")
            continue
        spec = {"task": name, "size": entries, "data_seed": 0, "config": {}}
        scorer = SandboxedScorer(FACTORY, spec, timeout=20)
        for i in range(entries):
            entry = dataset[i]
            for answer in (str(entry["answer"]), "certainly not"):
                verdict = scorer(answer, _encode(entry))
                compared += 1
                direct = in_process(dataset, answer, entry)
                if abs(verdict.score - direct) > 1e-9:
                    disagreements.append((name, i, answer[:30], direct, verdict))
        scorer.close()
    return compared, disagreements


def timing(name: str, repeats: int) -> tuple[float, float]:
    import reasoning_gym

    dataset = reasoning_gym.create_dataset(name, size=repeats, seed=0)
    spec = {"task": name, "size": repeats, "data_seed": 0, "config": {}}
    scorer = SandboxedScorer(FACTORY, spec)
    scorer.start()
    jobs = [(str(dataset[i]["answer"]), dataset[i]) for i in range(repeats)]
    t0 = time.perf_counter()
    for answer, entry in jobs:
        in_process(dataset, answer, entry)
    t1 = time.perf_counter()
    for answer, entry in jobs:
        scorer(answer, _encode(entry))
    t2 = time.perf_counter()
    scorer.close()
    return (t1 - t0) / repeats, (t2 - t1) / repeats


def main() -> None:
    from reasoning_gym.factory import DATASETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=sorted(DATASETS))
    parser.add_argument("--entries", type=int, default=3)
    parser.add_argument("--timed", nargs="*", default=["basic_arithmetic", "n_queens", "countdown"])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    start = time.perf_counter()
    compared, disagreements = parity(args.tasks, args.entries)
    print(f"\nparity: {compared} verdicts over {len(args.tasks)} tasks, "
          f"{len(disagreements)} disagreements ({time.perf_counter() - start:.0f} s)")  # fmt: skip
    for row in disagreements:
        print("  ", row)
    print("\n| task | in-process ms/answer | sandboxed ms/answer | ratio |\n|---|---|---|---|")
    for name in args.timed:
        direct, boxed = timing(name, args.repeats)
        print(f"| {name} | {1e3 * direct:.3f} | {1e3 * boxed:.3f} | {boxed / direct:.1f}x |")


if __name__ == "__main__":
    main()
