"""PPO against its SFT start on ``oreo/Chain-v0``, per seed, through the public CLI.

Per seed: the demo's tiny model and SFT on 8,000 gold solutions (`oreo demo`'s default), then
``oreo train --algo ppo`` from the SFT policy on the train split (`PPO_SETTINGS` of the demo,
or ``--set`` overrides), then greedy ``oreo rollout`` of both on a validation set (400 tasks of
the train split's ``data_seed=1`` stream, as `benchmarks/calibrate_chain.py` validates) and on
the demo's 200 test tasks, all with the demo's task knobs (``CHAIN``). Prints one row per seed
and the mean with its spread; every step resumes.

    python benchmarks/ppo_chain.py --out runs/ppo-bench --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from oreo_agents.recipes.demo import CHAIN, PPO_SETTINGS, demo_config
from oreo_cli.options import option_flags

OREO = [sys.executable, "-m", "oreo_cli"]
ENV = ["--env", "oreo/Chain-v0"]
# the demo's validation stream (`benchmarks/calibrate_chain.py`): train-split tasks of another
# data seed than the SFT's, never the test split
VALIDATION = {"size": 400, **CHAIN, "split": "train", "data_seed": 1}


def sh(args: list[str]) -> None:
    subprocess.run([*OREO, *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def greedy(policy: Path, out: Path, options: dict, seed: int) -> float:
    """Greedy success of ``policy`` on the Chain tasks of ``options`` (all of them)."""
    if not out.exists():
        sh(["rollout", *ENV, *option_flags(options), "--policy", policy, "--strategy", "greedy",
            "--tasks", options["size"], "--seed", seed, "--max-new-tokens", 96, "--backend", "hf",
            "--batch-size", 64, "--out", out])  # fmt: skip
    return json.loads(out.read_text())["success_rate"]


def run_seed(root: Path, seed: int, overrides: list[str]) -> dict[str, float]:
    from oreo_agents.models.tiny import chain_model

    cfg, out = demo_config(str(root), seed=seed), root / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "init" / "config.json").exists():
        chain_model(out / "init", seed=seed, **cfg.model)
    train = option_flags(cfg.task_options("train"))
    sh(["collect", *ENV, *train, "--model", "gold", "--out", out / "gold",
        "--tasks", cfg.train_tasks, "--seed", seed])  # fmt: skip
    sft = [f"--{k.replace('_', '-')}={v}" for k, v in cfg.sft.items()]
    sh(["train", "--algo", "sft", "--data", out / "gold", "--model", out / "init", "--out",
        out / "sft", "--seed", seed, "--report-to", "none", *sft])  # fmt: skip
    loop = {"micro_batch_size", "max_length", "lr", "batch_size"}
    ppo = [f"--{k.replace('_', '-')}={v}" for k, v in PPO_SETTINGS.items() if k in loop]
    ppo += [f"--set={k}={json.dumps(v)}" for k, v in PPO_SETTINGS.items() if k not in loop]
    sh(["train", "--algo", "ppo", *ENV, *train, "--model", out / "sft" / "policy", "--out",
        out / "ppo", "--seed", seed, "--report-to", "none", "--set=max_new_tokens=96", *ppo,
        *overrides])  # fmt: skip
    row = {}
    for name in ("sft", "ppo"):
        policy = out / name / "policy"
        row[f"{name} val"] = greedy(policy, out / f"{name}-val.json", VALIDATION, seed)
        row[f"{name} test"] = greedy(
            policy, out / f"{name}-test.json", cfg.task_options("test"), seed
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ppo-bench"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    extra = "an extra `oreo train` argument for PPO, e.g. --set=--lr=1e-5"
    parser.add_argument("--set", dest="overrides", action="append", default=[], help=extra)
    args = parser.parse_args()
    rows = {seed: run_seed(args.out, seed, args.overrides) for seed in args.seeds}
    cols = ["sft val", "ppo val", "sft test", "ppo test"]
    print("| seed | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for seed, row in rows.items():
        print(f"| {seed} | " + " | ".join(f"{row[c]:.1%}" for c in cols) + " |")
    if len(rows) > 1:
        cells = []
        for c in cols:
            values = [row[c] for row in rows.values()]
            cells.append(f"{statistics.mean(values):.1%} +- {statistics.stdev(values):.1%}")
        print("| mean +- sd | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
