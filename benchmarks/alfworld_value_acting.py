"""Does a value model make an ALFWorld agent act better than greedy? Run by hand on a finished
``benchmarks/alfworld_agents.py`` folder (it prints a table and asserts nothing)::

    python benchmarks/alfworld_value_acting.py --run runs/alf0 --value runs/alf0/v_orm_mc/value \
        --ks 2 3 5

The check that matters more than any AUROC (`benchmarks/alfworld_value_probe.py`): on the
held-out train games (``train_heldout``, never trained on and never an evaluation split, so a
value model may be chosen here), the policy (``--policy``, default ``RUN/sft/policy``) acts
greedily (K = 1: its most likely admissible action) and with value-guided acting at each K of
``--ks`` (its K most likely admissible actions, the value model picks one: `oreo rollout
--strategy best-of-k --rank-actions`), with the env settings and prompt of the run's samples.
Each row: success with its 95% interval, the games won and lost against K = 1 on the same
games, mean steps and the rollout's wall time. Reports are kept in ``--out`` (default
``RUN/acting/<value folder's parent name>``), and a row whose report exists is not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from oreo_agents.evaluation.metrics import wilson_interval  # noqa: E402

OREO = [sys.executable, "-m", "oreo_cli"]


def rollout_flags(run: Path, split: str, seed: int) -> list[str]:
    """The env options and acting flags of the run's samples (``RUN/samples/manifest.json``)
    on ``split``, with the pipeline's prompt (``--remind-task``)."""
    manifest = json.loads((run / "samples" / "manifest.json").read_text())
    options = {**manifest["env_options"], "split": split}
    flags = [f for key, value in options.items() for f in ("-o", f"{key}={value}")]
    sampling = manifest["sampling"]
    return [
        "--env", manifest["env_id"], *flags, "--backend", "hf", "--rank-actions", "--remind-task",
        "--max-new-tokens", str(sampling["max_new_tokens"]), "--seed", str(seed),
        "--env-workers", "2", "--batch-size", "64",
    ]  # fmt: skip


def play(flags: list[str], policy: Path, value: Path, k: int, report: Path) -> dict[str, Any]:
    """One rollout (greedy at K = 1, else value-guided), or its report when it exists."""
    if not report.exists():
        extra = [] if k == 1 else ["--strategy", "best-of-k", "--k", str(k), "--value",
                                   str(value), "--temperature", "1.0"]  # fmt: skip
        cmd = [*OREO, "rollout", *flags, "--policy", str(policy), *extra, "--out", str(report)]
        print("  $ oreo " + " ".join(cmd[len(OREO) :]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(report.read_text())


def row(k: int, r: dict[str, Any], greedy: dict[str, bool]) -> str:
    won = {rec["task_id"]: rec["success"] for rec in r["records"]}
    n, wins = len(won), sum(won.values())
    lo, hi = wilson_interval(wins, n)
    plus = sum(1 for t in won if won[t] and not greedy[t])
    minus = sum(1 for t in won if greedy[t] and not won[t])
    steps = [s["steps"] for rec in r["records"] for s in rec["samples"]]
    vs = "" if k == 1 else f"{plus} / {minus}"
    return (f"| {k} | {wins / n:.1%} ({lo:.1%}-{hi:.1%}) | {vs} | {sum(steps) / len(steps):.1f} | "
            f"{r['timings']['total_s']:.0f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a benchmarks/alfworld_agents.py --out")
    ap.add_argument("--value", type=Path, required=True, help="the value model's folder")
    ap.add_argument("--policy", type=Path, help="the acting policy (default RUN/sft/policy)")
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 3, 5])
    ap.add_argument("--split", default="train_heldout", help="never an evaluation split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="where the reports go (module docstring)")
    args = ap.parse_args()
    policy = args.policy or args.run / "sft" / "policy"
    # absolute without following links: OUT/value links into a checkpoint folder
    out = args.out or args.run / "acting" / Path(os.path.abspath(args.value)).parent.name
    out.mkdir(parents=True, exist_ok=True)
    flags = rollout_flags(args.run, args.split, args.seed)
    reports = {k: play(flags, policy, args.value, k, out / f"k{k}.json") for k in [1, *args.ks]}
    greedy = {rec["task_id"]: rec["success"] for rec in reports[1]["records"]}
    print(f"\n{policy} acting on {args.split}, value {args.value}\n")
    print("| K | success (95% CI) | vs K = 1: won / lost | mean steps | wall s |")
    print("|---|---|---|---|---|")
    for k, r in reports.items():
        print(row(k, r, greedy))


if __name__ == "__main__":
    main()
