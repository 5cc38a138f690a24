"""Does averaging losses over the optimizer batch (not each micro-batch) move the demo's table?

The demo's SFT has no accumulation (micro-batch = batch = 64), so only the methods trained with
accumulation and a token-averaged loss can move: rejection sampling and RCRL (micro-batch 16 of
32; OREO's and the ORM's means are over sequences and do not move). Per seed: the default demo
(batch means), then a copy of it with those two methods retrained and re-evaluated with
``per_micro_batch_mean`` (the old rule), side by side in one install.

    python benchmarks/batch_means_demo.py --out runs/batch-means --seeds 0 1 2

About 9 minutes a seed on 2 free cores; prints a table and asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

from oreo_agents.recipes.demo import demo_config, run_demo

METHODS = ("rft", "rcrl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        new_out, old_out = args.out / f"seed{seed}-batch", args.out / f"seed{seed}-micro"
        new = run_demo(demo_config(out=str(new_out), seed=seed))
        if not old_out.exists():
            shutil.copytree(new_out, old_out, symlinks=True)
            for method in METHODS:
                shutil.rmtree(old_out / f"{method}-r0", ignore_errors=True)
            (old_out / "report.json").unlink(missing_ok=True)
        cfg = demo_config(out=str(old_out), seed=seed)
        overrides = dict(cfg.method_overrides)
        for method in METHODS:
            overrides[method] = {**overrides.get(method, {}), "per_micro_batch_mean": True}
        old = run_demo(replace(cfg, method_overrides=overrides))
        for key in new["results"]:
            if key not in old["results"]:
                continue
            row = rows.setdefault(key, {"batch": [], "micro": []})
            row["batch"].append(100 * new["results"][key]["success_rate"])
            row["micro"].append(100 * old["results"][key]["success_rate"])
    print(f"\nseeds {args.seeds}: test success (%), batch means (new) vs micro-batch means (old)")
    print("| method | batch means | micro-batch means | difference (mean) |\n|---|---|---|---|")
    for key, row in rows.items():
        diff = statistics.mean(b - m for b, m in zip(row["batch"], row["micro"], strict=True))
        fmt = " / ".join
        print(f"| {key} | {fmt(f'{x:.1f}' for x in row['batch'])} | "
              f"{fmt(f'{x:.1f}' for x in row['micro'])} | {diff:+.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
