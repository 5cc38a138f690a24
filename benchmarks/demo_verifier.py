"""Choose the demo's verifier: the smallest value backbone that keeps value-guided search above
greedy, on validation tasks (issue 39, item 1).

Run by hand after ``oreo demo --seed S --out D`` (CPU; it prints a table and asserts nothing)::

    python benchmarks/demo_verifier.py --demo D --variants cont:6:1e-3 fresh:96x2:12

A variant names how its value backbone is made from the demo's own gold solutions:

- ``cont:E:LR``: the demo's SFT policy fine-tuned E more epochs at peak lr LR (the policy's
  size and tokenizer, trained further than the policy); ``cont:0`` is the policy itself;
- ``fresh:WxL:E``: a new ``chain_model`` of width W and L layers, fine-tuned E epochs at the
  demo's SFT lr.

Each variant then trains token-level OREO from the demo's SFT policy and samples with the demo's
settings but ``--value BACKBONE`` in the log-probability form (backbone lr 3e-5, head lr 1e-2:
the settings chosen for the 1.06M backbone, docs/results.md), and plays the validation tasks
(the train split's stream of ``data_seed=1``, never the test split): the backbone itself as a
greedy policy ("alone"), OREO greedy, value@16 (best of 16 samples at temperature 1 by the
value) with its within-task AUROC, and beam search of width 4, each search against greedy on
the same tasks with its paired 95% interval. Every step is skipped when its output exists, so
a re-run resumes.

The demo takes the cheapest variant whose value@16 and beam both beat greedy with a paired
interval above zero (`oreo_agents.recipes.demo.VERIFIER`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from calibrate_chain import oreo, run  # noqa: E402
from value_backbone import demo_searches  # noqa: E402

from oreo_agents.recipes.demo import CHAIN, ENV_ID, VERIFIER_VALUE, demo_config  # noqa: E402

VAL_TASKS = 200  # as in the value settings' choice (docs/results.md)


def backbone(demo: Path, seed: int, variant: str, work: Path) -> tuple[Path, float, int]:
    """The variant's value backbone: (its folder, seconds of fine-tuning, parameters)."""
    from oreo_agents.models.tiny import chain_model

    cfg = demo_config(str(demo), seed=seed)
    kind, *args = variant.split(":")
    sft = {**cfg.sft}
    if kind == "cont" and int(args[0]) == 0:  # the policy's own backbone, untrained further
        start, sft["epochs"] = str(demo / "sft" / "policy"), 0
    elif kind == "cont":
        start, sft["epochs"], sft["lr"] = str(demo / "sft" / "policy"), int(args[0]), args[1]
    elif kind == "fresh":
        width, layers = (int(x) for x in args[0].split("x"))
        start, sft["epochs"] = str(work / "init"), int(args[1])
        if not (work / "init" / "config.json").exists():
            chain_model(work / "init", seed=seed, hidden_size=width, num_layers=layers)
    else:
        raise SystemExit(f"unknown variant {variant!r}: cont:E:LR or fresh:WxL:E")
    done = work / "sft" / "policy" / "config.json"
    if sft["epochs"] == 0:
        done = Path(start) / "config.json"
        (work / "sft_s.json").write_text("0.0")
    seconds = 0.0
    if not done.exists():
        sets = [a for k, v in sft.items() for a in ("--set", f"{k}={v}")]
        seconds = run(oreo("train", "--algo", "sft", "--data", str(demo / "gold"), "--model",
                           start, "--out", str(work / "sft"), "--seed", str(seed), "--set",
                           "report_to=none", *sets),
                      work / "sft.log")  # fmt: skip
        (work / "sft_s.json").write_text(json.dumps(seconds))
    seconds = json.loads((work / "sft_s.json").read_text())
    from transformers import AutoModelForCausalLM

    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(done.parent).parameters())
    return done.parent, seconds, params


def screen(demo: Path, seed: int, variant: str, work: Path) -> dict:
    """One variant's row: backbone, OREO with it, and the validation rollouts."""
    work.mkdir(parents=True, exist_ok=True)
    path, sft_s, params = backbone(demo, seed, variant, work)
    cfg = demo_config(str(demo), seed=seed)
    rl = {**cfg.rl, **cfg.method_overrides["oreo"], **VERIFIER_VALUE}
    trained = work / "oreo"
    if not (trained / "value" / "oreo_value.json").exists():
        sets = [a for k, v in rl.items() for a in ("--set", f"{k}={v}")]
        run(oreo("train", "--algo", "oreo", "--data", str(demo / "samples-r0"), "--model",
                 str(demo / "sft" / "policy"), "--value", str(path), "--out", str(trained),
                 "--seed", str(cfg.seed), "--set", "report_to=none", *sets),
            work / "oreo.log")  # fmt: skip
    knobs = {**CHAIN, "split": "train", "data_seed": 1, "size": VAL_TASKS}
    val = ["--env", ENV_ID, *[a for k, v in knobs.items() for a in ("-o", f"{k}={v}")],
           "--tasks", str(VAL_TASKS), "--max-new-tokens", str(cfg.max_new_tokens),
           "--seed", str(cfg.seed), "--batch-size", "64",
           "--policy", str(trained / "policy")]  # fmt: skip
    reports = demo_searches(cfg, val, trained / "value", work, "val")
    alone = work / "backbone-greedy.json"  # the verifier itself as a greedy policy
    if not alone.exists():
        run(oreo("rollout", *val[:-2], "--policy", str(path), "--strategy", "greedy", "--out",
                 str(alone)), work / "backbone-greedy.log")  # fmt: skip
    v16 = reports["value16"]
    vs = {name: _vs(reports["greedy"], reports[name]) for name in ("value16", "beam")}
    return {
        "variant": variant,
        "params": params,
        "backbone_s": sft_s,
        "backbone_greedy": json.loads(alone.read_text())["success_rate"],
        "greedy": reports["greedy"]["success_rate"],
        "value@16": v16["success_rate"],
        "auroc": v16["value_auroc"]["within_task"],
        "beam": reports["beam"]["success_rate"],
        "pass@16": v16["pass_at_k"][str(cfg.search_k)],
        "value@16_vs_greedy": vs["value16"],
        "beam_vs_greedy": vs["beam"],
    }


def _vs(greedy: dict, search: dict) -> dict:
    """`paired_difference` of a search's outcomes from greedy's on the same tasks."""
    from oreo_agents.evaluation.metrics import paired_difference

    won = {rec["task_id"]: int(bool(rec["success"])) for rec in search["records"]}
    base = [int(bool(rec["success"])) for rec in greedy["records"]]
    return paired_difference(base, [won[rec["task_id"]] for rec in greedy["records"]])


def _points(vs: dict) -> str:
    low, high = (100 * x for x in vs["ci95"])
    return f"{100 * vs['diff']:+.1f} [{low:.0f}, {high:.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True, help="an `oreo demo` folder")
    parser.add_argument("--seed", type=int, default=0, help="the demo's --seed")
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--work", type=Path, help="default: DEMO/verifiers")
    args = parser.parse_args()
    work = args.work or args.demo / "verifiers"
    rows = []
    for variant in args.variants:
        rows.append(screen(args.demo, args.seed, variant, work / variant.replace(":", "_")))
        (work / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")
    head = f"{'variant':<14} {'params':>7} {'backbone s':>10} {'alone':>6} {'greedy':>6} "
    head += f"{'value@16':>8} "
    head += f"{'vs greedy':>14} {'AUROC':>5} {'beam':>6} {'vs greedy':>14} {'pass@16':>7}"
    print("\n" + head)
    for r in rows:
        print(f"{r['variant']:<14} {r['params'] / 1e6:>6.2f}M {r['backbone_s']:>10.0f} "
              f"{r['backbone_greedy']:>6.1%} {r['greedy']:>6.1%} {r['value@16']:>8.1%} "
              f"{_points(r['value@16_vs_greedy']):>14} "
              f"{r['auroc']:>5.2f} {r['beam']:>6.1%} {_points(r['beam_vs_greedy']):>14} "
              f"{r['pass@16']:>7.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
