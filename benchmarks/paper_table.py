"""The OREO paper's comparison on ``oreo/Chain-v0`` over several seeds: mean and spread per method.

Run by hand (CPU, about 7 minutes per seed on 2 free cores; it prints a table and asserts
nothing)::

    python benchmarks/paper_table.py --out runs/paper --seeds 0 1 2 --write runs/paper/table.md

Each seed is one full ``oreo demo`` run (its own folder under ``--out``, resumable). The table
gives, per method, the mean test success over seeds (greedy unless the row names a search), the
sample standard deviation, the per-seed values, the chains' line accuracy and the value model's
within-task AUROC; ``--write`` also writes it as Markdown with the exact command.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oreo_agents.recipes.demo import demo_config, method_label, run_demo


def collect(out: Path, seeds: list[int], rounds: int, oreo_algo: str) -> dict[str, dict]:
    """Per method: the success, greedy line accuracy and within-task AUROC of every seed."""
    per_method: dict[str, dict[str, list]] = {}
    for seed in seeds:
        cfg = demo_config(out=str(out / f"seed{seed}"), seed=seed, rounds=rounds,
                          oreo_algo=oreo_algo)  # fmt: skip
        report = run_demo(cfg, stage=lambda name, s=seed: print(f"[seed {s}] {name}", flush=True))
        for key, result in report["results"].items():
            new = {"label": label(key, report["config"]), "success": [], "lines": [], "auroc": [],
                   "vs": []}  # fmt: skip
            row = per_method.setdefault(key, new)
            row["success"].append(result["success_rate"])
            if "vs_greedy" in result:
                row["vs"].append(result["vs_greedy"])
            if "line_accuracy" in result.get("lines", {}):
                row["lines"].append(result["lines"]["line_accuracy"])
            if "within_task" in result.get("value_auroc", {}):
                row["auroc"].append(result["value_auroc"]["within_task"])
    return per_method


def label(key: str, config: dict) -> str:
    """The demo's name of a result, with its round from the second on."""
    rnd = key.partition("-r")[2]
    name = method_label(key, config)
    return f"{name} (round {int(rnd) + 1})" if rnd and int(rnd) > 0 else name


def _mean(xs: list[float], fmt: str) -> str:
    return format(statistics.mean(xs), fmt) if xs else ""


def rows(per_method: dict[str, dict]) -> list[tuple[str, ...]]:
    out = []
    for row in per_method.values():
        rates = row["success"]
        spread = statistics.stdev(rates) if len(rates) > 1 else 0.0
        values = ", ".join(f"{r:.1%}" for r in rates)
        out.append((row["label"], _mean(rates, ".1%"), f"{spread:.1%}", values, _vs(row["vs"]),
                    _mean(row["lines"], ".1%"), _mean(row["auroc"], ".2f")))  # fmt: skip
    return out


def _vs(diffs: list[dict]) -> str:
    """A search row against its policy's greedy row: the mean difference in points, then per
    seed the difference with the tasks won / lost (`paired_difference`)."""
    if not diffs:
        return ""
    mean = statistics.mean(100 * d["diff"] for d in diffs)
    each = ", ".join(f"{100 * d['diff']:+.1f} ({d['won']}/{d['lost']})" for d in diffs)
    return f"{mean:+.1f}: {each}"


HEADER = ("method", "mean success", "std over seeds", "per seed", "vs greedy", "line acc",
          "AUROC")  # fmt: skip


def markdown(table_rows: list[tuple[str, ...]], command: str, seeds: list[int]) -> str:
    head = [*HEADER[:3], f"per seed ({', '.join(map(str, seeds))})", *HEADER[4:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows]
    note = (
        "line acc: right lines / lines of the row's chains (greedy; all K samples for the "
        "reranking rows), mean over seeds; AUROC: within a test task, the value model's (ORM's) "
        "ranking of right over wrong samples (mean); vs greedy: a search row's success minus "
        "its policy's greedy success on the same tasks, in points, mean over seeds, then per "
        "seed with the tasks won / lost."
    )
    return f"Command: `{command}`\n\n" + "\n".join(lines) + f"\n\n{note}\n"


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
    table = Table(title=f"oreo/Chain-v0, test success over seeds {args.seeds}")
    for col in HEADER:
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
