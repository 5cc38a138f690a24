"""How far the demo's overall ETA is from the real time left, through the run.

Run by hand (prints a table, asserts nothing)::

    python benchmarks/demo_eta.py --seed 1 --out /tmp/demo-eta       # run the default demo
    python benchmarks/demo_eta.py --replay /tmp/demo-eta/eta-events.jsonl   # its ETA, again

It runs `oreo demo` (`run_demo`) in a fresh folder and logs when each stage starts and how far
it is (OUT/eta-events.jsonl), then replays that log through the clock `oreo demo` shows
(`oreo_agents.recipes.eta.StageClock` over `expected_seconds`) and prints, at the start of each
stage, the predicted time left beside the real time left. ``--replay`` does the last part for a
logged run, with the expected times as they are now. The last line prints the stages' measured
seconds in the form of `oreo_agents.recipes.demo_times.STAGE_SECONDS`: measure those on one seed and
check the ETA on another.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from oreo_agents.recipes.demo import demo_config, run_demo
from oreo_agents.recipes.demo_times import expected_seconds
from oreo_agents.recipes.eta import StageClock


def record(out: str, seed: int, fast: bool, ppo: bool) -> Path:
    shutil.rmtree(out, ignore_errors=True)  # a resumed run would not time its stages
    cfg = demo_config(out=out, seed=seed, fast=fast, ppo=ppo)
    events: list[list] = []
    started = time.monotonic()

    def stage(name: str) -> None:
        events.append(["start", name, time.monotonic() - started])

    def progress(done: float, total: float | None) -> None:
        events.append(["progress", done, total, time.monotonic() - started])

    report = run_demo(cfg, stage, progress=progress)
    events.append(["end", time.monotonic() - started])
    path = Path(out) / "eta-events.jsonl"
    config = {"seed": seed, "fast": fast, "ppo": ppo}
    lines = [json.dumps(config)] + [json.dumps(e) for e in events]
    path.write_text("\n".join(lines) + "\n")
    print(json.dumps({k: round(v, 1) for k, v in report["timings_s"].items()}))
    return path


def replay(path: Path) -> None:
    config, *events = [json.loads(line) for line in path.read_text().splitlines()]
    cfg = demo_config(out=str(path.parent), **config)
    now = [0.0]
    names = [event[1] for event in events if event[0] == "start"]  # as run, not as now
    clock = StageClock(expected_seconds(cfg, names), clock=lambda: now[0])
    total = events[-1][1]
    rows = []
    for event in events:
        now[0] = event[-1]
        if event[0] == "start":
            clock.start(event[1])
            rows.append((event[1], now[0], clock.remaining()))
        elif event[0] == "progress":
            clock.progress(event[1], event[2])
    print(f"{'stage':<24} {'at s':>6} {'ETA s':>6} {'real s':>6} {'error':>6}")
    worst = 0.0
    for name, at, predicted in rows:
        real = total - at
        error = (predicted - real) / real if real > 0 else 0.0
        worst = max(worst, abs(error))
        print(f"{name:<24} {at:6.0f} {predicted:6.0f} {real:6.0f} {error:+6.0%}")
    print(f"total {total:.0f} s; the largest error at a stage start: {worst:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/demo-eta")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--ppo", action="store_true")
    parser.add_argument("--replay", type=Path, help="an eta-events.jsonl to replay (no run)")
    args = parser.parse_args()
    path = args.replay or record(args.out, args.seed, args.fast, args.ppo)
    replay(path)


if __name__ == "__main__":
    main()
