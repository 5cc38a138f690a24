"""Where an ALFWorld evaluation's time goes: process start-up, the env, the model (issue 36).

Run by hand (prints tables, asserts nothing)::

    python benchmarks/alfworld_profile.py --data ../shared/data/alfworld --out /tmp/alfworld-profile

It builds the agent of `benchmarks/alfworld_agents.py` (a from-scratch 4.5M Llama with a BPE
tokenizer trained on expert episodes of train games; untrained: its cost per step is what is
measured, not its success), then plays the first ``--games`` games of valid_unseen to the step
cap three ways, each in this one process with the env in it too (``--env-workers 0``):

1. the random scripted policy: the env's own cost (reset, step, admissible actions);
2. the agent acting by ranking the admissible actions (``--rank-actions``), timed;
3. the same under cProfile, its time split by where the functions live (torch, transformers,
   tokenizers, the ALFWorld / TextWorld engine, oreo). cProfile slows Python-heavy code (the
   engine's parser) more than torch's kernels, so read that split as a rough guide and 1-2 as
   the measurement.

and it times a new process's start-up (``python -m oreo_cli --help`` and the imports a command
that loads a model pays).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alfworld_agents import data_dir  # noqa: E402

ENV = "oreo/ALFWorld-v0"
# where a function's file lives -> the part of the run it belongs to (first match wins)
PARTS = (
    ("alfworld / textworld engine", ("alfworld", "textworld", "fast_downward", "tatsu", "jericho")),
    ("tokenizers", ("tokenizers", "tokenization_")),
    ("torch (model passes)", ("torch",)),
    ("transformers", ("transformers",)),
    ("oreo", ("oreo_agents", "oreo_envs", "oreo_cli", "/cli/")),
)


def oreo(*args: object) -> float:
    """Run ``oreo ARGS`` in this process; returns its wall seconds."""
    from oreo_cli.launch import main

    started = time.perf_counter()
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    return time.perf_counter() - started


def start_up() -> dict[str, float]:
    """Wall seconds of a new process: the CLI's help, and the imports of a model command."""
    out = {}
    for name, cmd in (
        ("oreo --help", [sys.executable, "-m", "oreo_cli", "--help"]),
        ("import torch + transformers", [sys.executable, "-c",
                                         "import torch, transformers.models.llama"]),
    ):  # fmt: skip
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            runs.append(time.perf_counter() - started)
        out[name] = min(runs)
    return out


def split(profile: cProfile.Profile) -> dict[str, float]:
    """The profile's own time (tottime) per part of `PARTS`; the rest is "other"."""
    stats = pstats.Stats(profile)
    parts: dict[str, float] = {}
    for (filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        tottime = row[2]
        where = name if filename == "~" else filename  # a C function: "<built-in method ...>"
        part = next((p for p, keys in PARTS if any(k in where for k in keys)), "other")
        parts[part] = parts.get(part, 0.0) + tottime
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/alfworld"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/alfworld-profile"))
    parser.add_argument("--games", type=int, default=20, help="valid_unseen games played")
    parser.add_argument("--train-games", type=int, default=60, help="expert games (tokenizer)")
    parser.add_argument("--max-episode-steps", type=int, default=40)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    where = ["-o", f"data_dir={data_dir(args.data, args.out)}"]
    cap = ["-o", f"max_episode_steps={args.max_episode_steps}"]
    unseen = ["--env", ENV, "-o", "split=valid_unseen", *where, *cap, "--tasks", args.games,
              "--env-workers", 0]  # fmt: skip

    expert = args.out / "expert"
    oreo("collect", "--env", ENV, "-o", "split=train", *where, "--model", "expert",
         "--tasks", args.train_games, "--out", expert)  # fmt: skip
    init = args.out / "init"
    if not (init / "config.json").exists():
        from oreo_agents.data.episodes import load_episodes
        from oreo_agents.models.tiny import agent_model
        from oreo_agents.rollout.agent_prompt import DEFAULT_INSTRUCTION

        texts = [DEFAULT_INSTRUCTION] + [
            e.prompt + "".join(s["action"] + s["observation"] for s in e.steps)
            for e in load_episodes(expert)
        ]
        agent_model(init, texts, vocab_size=1024, hidden_size=256, num_layers=4)

    random_s = oreo("rollout", *unseen, "--policy", "random", "--out", args.out / "random.json")
    acting = ["--backend", "hf", "--max-new-tokens", 16, "--batch-size", 16, "--rank-actions"]
    model_s = oreo("rollout", *unseen, "--policy", init, *acting, "--out", args.out / "agent.json")
    profile = cProfile.Profile()
    profile.enable()
    profiled_s = oreo("rollout", *unseen, "--policy", init, *acting,
                      "--out", args.out / "agent-profiled.json")  # fmt: skip
    profile.disable()

    steps = {}
    for name in ("random", "agent"):
        report = json.loads((args.out / f"{name}.json").read_text())
        steps[name] = sum(s["steps"] for r in report["records"] for s in r["samples"])
    print(f"\n{args.games} valid_unseen games, step cap {args.max_episode_steps}, one process")
    print(f"{'run':<34} {'wall s':>8} {'steps':>6} {'ms/step':>8}")
    for name, wall, n in (("random policy (the env alone)", random_s, steps["random"]),
                          ("agent, ranked actions", model_s, steps["agent"])):  # fmt: skip
        print(f"{name:<34} {wall:8.1f} {n:6d} {1000 * wall / max(n, 1):8.1f}")
    env_share = random_s / max(steps["random"], 1) * steps["agent"] / model_s
    print(f"the env's share of the agent's run (at the random policy's cost per step): "
          f"{env_share:.0%}")
    parts = split(profile)
    total = sum(parts.values())
    print(f"\nunder cProfile ({profiled_s:.1f} s wall; own time by where the code lives)")
    for part, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {part:<30} {seconds:8.1f} s {seconds / total:6.1%}")
    print("\na new process")
    for name, seconds in start_up().items():
        print(f"  {name:<30} {seconds:8.2f} s")


if __name__ == "__main__":
    main()
