"""Value-guided search with a value model on a wider backbone than the policy (issue 17, item 2).

Run by hand (CPU; about 15 minutes for the backbone, then 8 minutes per seed; it prints a table
and asserts nothing)::

    python benchmarks/value_backbone.py --out /tmp/vb --seeds 0 1 2

On ``oreo demo``'s task a value model on the policy's own 134k backbone ranks the policy's
samples at chance, whatever its targets, learning rates or head (docs/results.md). This script
measures the other road the issue names, a separate and larger value backbone, through the
public CLI:

1. the value backbone: a 1.06M model (`calibrate_chain.py --preset value-1m`: 8x the policy's
   parameters) fine-tuned on the same gold solutions as the demo's SFT, greedy-evaluated on the
   validation tasks (the train split's ``data_seed=1``);
2. per seed, ``oreo demo --seed S`` (skipped when its report exists);
3. per seed, token-level OREO from the demo's SFT policy and samples with the demo's settings,
   but ``--value BACKBONE --set value_form=logprob`` (the value's increments read the
   backbone's own token log-probabilities, `oreo_agents.models.value.ValueModel`), the
   backbone at ``value_lr`` 3e-5 and the head at 1e-2 (chosen on the validation tasks of
   seed 0, docs/results.md);
4. per seed, on the demo's 200 test tasks: greedy of that OREO policy, value-guided beam (width
   4, step level, temperature 1) and value@16 (best of 16 samples by the value model), with
   the value model's within-task AUROC and pass@16; and once, the backbone itself as a greedy
   policy on the test tasks, since a verifier this strong is also a stronger policy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from calibrate_chain import PRESETS, calibrate, oreo, run  # noqa: E402

from oreo_agents.recipes.demo import CHAIN, ENV_ID, VERIFIER_VALUE, demo_config  # noqa: E402


def chain_opts(split: str, tasks: int) -> list[str]:
    knobs = {**CHAIN, "split": split, "size": tasks}
    return ["--env", ENV_ID, *[a for k, v in knobs.items() for a in ("-o", f"{k}={v}")]]


def demo_searches(cfg, rollout: list[str], value: Path, folder: Path, prefix: str) -> dict:
    """Greedy, value-guided beam (the demo's width, step level) and value@K (the demo's K, at
    temperature 1) of one policy: ``rollout`` holds the env, tasks and ``--policy`` options of
    ``oreo rollout``, ``value`` the value model. Each report is FOLDER/PREFIX-NAME.json, kept:
    a re-run reads it instead of playing again."""
    strategies = {
        "greedy": ["--strategy", "greedy"],
        "beam": ["--strategy", "beam", "--beam-width", str(cfg.beam_width), "-o",
                 "granularity=step", "--value", str(value)],
        "value16": ["--strategy", "best-of-k", "--k", str(cfg.search_k), "--temperature", "1.0",
                    "--value", str(value)],
    }  # fmt: skip
    reports = {}
    for name, args in strategies.items():
        path = folder / f"{prefix}-{name}.json"
        if not path.exists():
            run(oreo("rollout", *rollout, *args, "--out", str(path)), path.with_suffix(".log"))
        reports[name] = json.loads(path.read_text())
    return reports


def seed_runs(seed_dir: Path, seed: int, backbone: Path) -> dict:
    """Steps 2-4 for one seed; each step is skipped when its output exists."""
    if not (seed_dir / "report.json").exists():
        run(oreo("demo", "--seed", str(seed), "--out", str(seed_dir)), seed_dir.with_suffix(".log"))
    cfg = demo_config(str(seed_dir), seed=seed)
    rl = {**cfg.rl, **cfg.method_overrides["oreo"], **VERIFIER_VALUE}
    vb = seed_dir / "oreo-vb"
    if not (vb / "value" / "oreo_value.json").exists():
        sets = [a for k, v in rl.items() if k not in ("lr", "batch_size", "epochs")
                for a in ("--set", f"{k}={v}")]  # fmt: skip
        run(oreo("train", "--algo", "oreo", "--data", str(seed_dir / "samples-r0"),
                 "--model", str(seed_dir / "sft" / "policy"), "--value", str(backbone),
                 "--out", str(vb), "--seed", str(seed), "--lr", str(rl["lr"]),
                 "--batch-size", str(rl["batch_size"]), "--epochs", str(rl["epochs"]),
                 "--set", "report_to=none", *sets),
            seed_dir / "oreo-vb.log")  # fmt: skip
    test = [*chain_opts("test", cfg.test_tasks), "--tasks", str(cfg.test_tasks),
            "--max-new-tokens", str(cfg.max_new_tokens), "--seed", str(seed), "--batch-size", "64",
            "--policy", str(vb / "policy")]  # fmt: skip
    reports = demo_searches(cfg, test, vb / "value", seed_dir, "vb")
    demo = json.loads((seed_dir / "report.json").read_text())["results"]
    v16 = reports["value16"]
    return {
        "seed": seed,
        "sft": demo["sft"]["success_rate"],
        "oreo (demo)": demo["oreo-r0"]["success_rate"],
        "oreo, wide value": reports["greedy"]["success_rate"],
        "beam": reports["beam"]["success_rate"],
        "value@16": v16["success_rate"],
        "maj@16": v16["maj_at_k"][str(cfg.search_k)],
        "pass@16": v16["pass_at_k"][str(cfg.search_k)],
        "auroc": v16["value_auroc"]["within_task"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (re-run to resume)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    backbone = args.out / "value-1m" / "sft" / "policy"
    if not (backbone / "config.json").exists():
        row = calibrate("value-1m", PRESETS["value-1m"], args.out)
        (args.out / "value-1m.json").write_text(json.dumps(row, indent=2) + "\n")
    val = json.loads((args.out / "value-1m.json").read_text())
    alone = args.out / "value-1m-test.json"
    if not alone.exists():
        cfg = demo_config(str(args.out))
        run(oreo("rollout", *chain_opts("test", cfg.test_tasks), "--tasks", str(cfg.test_tasks),
                 "--max-new-tokens", str(cfg.max_new_tokens), "--policy", str(backbone),
                 "--strategy", "greedy", "--out", str(alone)),
            args.out / "value-1m-test.log")  # fmt: skip
    rows = [seed_runs(args.out / f"seed{s}", s, backbone) for s in args.seeds]
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nvalue backbone: {val['params'] / 1e6:.2f}M, greedy as a policy {val['greedy']:.1%} "
          f"(validation), {json.loads(alone.read_text())['success_rate']:.1%} (test)")  # fmt: skip
    keys = [k for k in rows[0] if k != "seed"]
    print(f"{'row':<18} {'mean':>7} {'std':>6}  per seed")
    for k in keys:
        values = [r[k] for r in rows]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        cells = ", ".join(f"{v:.1%}" if k != "auroc" else f"{v:.2f}" for v in values)
        mean = statistics.mean(values)
        shown = f"{mean:.1%}" if k != "auroc" else f"{mean:.2f}"
        print(f"{k:<18} {shown:>7} {std:>6.1%}  {cells}")


if __name__ == "__main__":
    main()
