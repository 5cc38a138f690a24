"""Does averaging losses over the optimizer batch (not each micro-batch) move the demo's table?

The demo's SFT has no accumulation (micro-batch = batch = 64), so only the methods trained with
accumulation and a token-averaged loss can move: rejection sampling and RCRL (micro-batch 16 of
32); OREO's, DPO's and KTO's means are over sequences, which equal micro-batches already
average alike. The ORM (a token mean) can move too and is not redone here. Per seed: the
default demo (batch means), then the same
folder with those two methods retrained and re-evaluated with ``per_micro_batch_mean`` (the old
rule), side by side in one install.

    python benchmarks/batch_means_demo.py --out runs/batch-means --seeds 0 1 2

About 9 minutes a seed on 2 free cores; prints a table and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
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
        # One folder per seed (its runs record their absolute paths): the default demo, its
        # report kept aside and its two methods' folders moved aside, then the same demo with
        # those two retrained under the old rule; every other stage is re-used as finished.
        out = args.out / f"seed{seed}"
        kept = out / "report-batch-means.json"
        if not kept.exists():
            new = run_demo(demo_config(out=str(out), seed=seed))
            kept.write_text(json.dumps(new, indent=2) + "\n")
            for method in METHODS:
                (out / f"{method}-r0").rename(out / f"{method}-r0-batch-means")
        new = json.loads(kept.read_text())
        cfg = demo_config(out=str(out), seed=seed)
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
