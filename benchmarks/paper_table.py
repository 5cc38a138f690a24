"""The OREO paper's comparison on ``oreo/Chain-v0`` over several seeds: mean and spread per method.

Run by hand (CPU, 4-5 minutes per seed on 2 free cores; it prints a table and asserts
nothing)::

    python benchmarks/paper_table.py --out runs/paper --seeds 0 1 2 --write docs/results.md

Each seed is one full ``oreo demo`` run (its own folder under ``--out``, resumable). The table
gives, per method, the mean greedy test success over seeds, the sample standard deviation and the
per-seed values; ``--write`` also writes it as Markdown with the exact command.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oreo_agents.recipes.demo import LABELS, demo_config, run_demo


def collect(out: Path, seeds: list[int], rounds: int, oreo_algo: str) -> dict[str, list[float]]:
    per_method: dict[str, list[float]] = {}
    for seed in seeds:
        cfg = demo_config(out=str(out / f"seed{seed}"), seed=seed, rounds=rounds,
                          oreo_algo=oreo_algo)  # fmt: skip
        report = run_demo(cfg, stage=lambda name, s=seed: print(f"[seed {s}] {name}", flush=True))
        for key, result in report["results"].items():
            per_method.setdefault(key, []).append(result["success_rate"])
    return per_method


def label(key: str) -> str:
    method, _, rnd = key.partition("-r")
    name = LABELS.get(method, method)
    return f"{name} (round {int(rnd) + 1})" if rnd and int(rnd) > 0 else name


def rows(per_method: dict[str, list[float]]) -> list[tuple[str, str, str, str]]:
    out = []
    for key, rates in per_method.items():
        mean = statistics.mean(rates)
        spread = statistics.stdev(rates) if len(rates) > 1 else 0.0
        values = ", ".join(f"{r:.1%}" for r in rates)
        out.append((label(key), f"{mean:.1%}", f"{spread:.1%}", values))
    return out


def markdown(table_rows: list[tuple[str, str, str, str]], command: str, seeds: list[int]) -> str:
    lines = [
        "| method | mean success | std over seeds | per seed ("
        + ", ".join(map(str, seeds))
        + ") |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows]
    return f"Command: `{command}`\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/paper")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--oreo-algo", default="oreo")
    parser.add_argument("--write", help="also write the table as Markdown to this file")
    args = parser.parse_args()
    per_method = collect(Path(args.out), args.seeds, args.rounds, args.oreo_algo)
    table_rows = rows(per_method)
    table = Table(title=f"oreo/Chain-v0, greedy test success over seeds {args.seeds}")
    for col in ("method", "mean", "std", "per seed"):
        table.add_column(col, justify="left" if col in ("method", "per seed") else "right")
    for row in table_rows:
        table.add_row(*row)
    Console().print(table)
    if args.write:
        command = "python " + " ".join(sys.argv)
        Path(args.write).write_text(markdown(table_rows, command, args.seeds))
        print(f"table written to {args.write}")


if __name__ == "__main__":
    main()
