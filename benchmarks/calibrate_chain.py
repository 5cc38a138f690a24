"""Calibrate ``oreo/Chain-v0``: SFT a tiny model from scratch, then greedy success on test tasks.

Run by hand (CPU is fine; it prints a table and asserts nothing)::

    python benchmarks/calibrate_chain.py                      # every preset
    python benchmarks/calibrate_chain.py --preset default --workdir /tmp/chain-cal

Each setting runs the same commands a user would, through the ``oreo`` CLI (printed as they run):
build the model (`oreo_agents.models.tiny.chain_model`), ``oreo collect --policy gold`` on the train
split, ``oreo train --algo sft``, and ``oreo collect --temperature 0`` on held-out test tasks.
The aim is a middling SFT success rate (20-60%) in a few CPU minutes, leaving room for RL.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    """One calibration run.

    Attributes:
        knobs: `ChainEnv` options (difficulty), shared by the train and test splits.
        hidden: Model width (`chain_model` hidden_size).
        layers: Transformer blocks.
        train_tasks: Gold episodes to fine-tune on (one per training task).
        epochs: Passes over them.
        lr: Peak learning rate (cosine schedule).
        batch: Sequences per optimizer step.
        test_tasks: Held-out tasks for the greedy evaluation.
    """

    knobs: dict = field(default_factory=dict)
    hidden: int = 128
    layers: int = 4
    train_tasks: int = 8000
    epochs: int = 4
    lr: float = 3e-3
    batch: int = 64
    test_tasks: int = 500


# Measured (1 torch thread on a shared 2-core CPU, 500 test tasks): success after SFT is
# default (max_value 25) 42.0%, values-20 75.6%, values-20-half 5.6%, values-30 11.4%,
# values-50 13.8%, values-99 4.8%, shuffled-99 7.8%: the arithmetic is the hard part, and it is
# learnt late and abruptly, so the number of SFT steps matters as much as the knobs.
PRESETS = {
    "default": Setting(),
    "values-20": Setting(knobs={"max_value": 20}),
    "values-20-half": Setting(knobs={"max_value": 20}, train_tasks=4000),
    "values-30": Setting(knobs={"max_value": 30}),
    "values-50": Setting(knobs={"max_value": 50}),
    "values-99": Setting(knobs={"max_value": 99}),
    "shuffled-99": Setting(knobs={"max_value": 99, "shuffle_names": True}),
}


THREADS: int | None = None  # torch threads of the runs (--threads); None: torch's default


def oreo(*args: str) -> list[str]:
    return [sys.executable, "-m", "oreo_cli", *args]


def run(cmd: list[str], log: Path) -> float:
    """Run one command (printed first), its output into ``log``; returns the wall time."""
    shown = " ".join(shlex.quote(c) for c in ["oreo", *cmd[3:]])
    print(f"  $ {shown}", flush=True)
    start = time.perf_counter()
    with log.open("w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env())
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {shown}\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
    if THREADS:
        # On a shared 2-core machine, torch's default of one thread per core oversubscribes
        # the CPU as soon as another process runs, and every step gets several times slower.
        env["OMP_NUM_THREADS"] = str(THREADS)
    return env


def calibrate(name: str, s: Setting, work: Path) -> dict:
    """Build, collect gold, SFT and evaluate one setting; returns its row of the table."""
    from oreo_agents.models.tiny import chain_model
    from oreo_agents.rollout.collect import summarize

    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    model, _ = chain_model(d / "init", hidden_size=s.hidden, num_layers=s.layers)
    params = sum(p.numel() for p in model.parameters())
    opts = [a for k, v in s.knobs.items() for a in ("-o", f"{k}={json.dumps(v)}")]
    run(oreo("collect", "--env", "oreo/Chain-v0", "--policy", "gold", "--split", "train",
             "-o", f"size={s.train_tasks}", *opts, "--out", str(d / "gold")),
        d / "gold.log")  # fmt: skip
    sft_s = run(oreo("train", "--algo", "sft", "--data", str(d / "gold"), "--model",
                     str(d / "init"), "--out", str(d / "sft"), "--epochs", str(s.epochs),
                     "--lr", str(s.lr), "--batch-size", str(s.batch), "--micro-batch-size",
                     str(s.batch), "--set", "max_length=256"),
                d / "sft.log")  # fmt: skip
    eval_s = run(oreo("collect", "--env", "oreo/Chain-v0", "--model", str(d / "sft" / "policy"),
                      "--split", "test", "-o", f"size={s.test_tasks}", *opts,
                      "--temperature", "0", "--samples", "1", "--max-new-tokens", "128",
                      "--batch-size", "64", "--out", str(d / "eval")),
                 d / "eval.log")  # fmt: skip
    metrics = [json.loads(line) for line in (d / "sft" / "metrics.jsonl").read_text().splitlines()]
    last = metrics[-max(1, len(metrics) // 10) :]  # the last tenth: the loss SFT ended at
    return {
        "name": name,
        **asdict(s),
        "params": params,
        "sft_steps": len(metrics),
        "final_loss": sum(m["sft_loss"] for m in last) / len(last),
        "tokens_per_s": sum(m["tokens_per_s"] for m in metrics) / len(metrics),
        "sft_s": sft_s,
        "eval_s": eval_s,
        "success": summarize(str(d / "eval"))["success_rate"],
    }


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'setting':<12} {'knobs':<18} {'params':>7} {'data x ep':>10} {'lr':>6} {'steps':>5} "
        f"{'loss':>6} {'tok/s':>6} {'SFT s':>6} {'eval s':>6} {'success':>8}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        knobs = ",".join(f"{k}={v}" for k, v in r["knobs"].items()) or "defaults"
        print(
            f"{r['name']:<12} {knobs:<18} {r['params'] / 1e6:>6.2f}M "
            f"{r['train_tasks']:>6}x{r['epochs']:<3} {r['lr']:>6.0e} {r['sft_steps']:>5} "
            f"{r['final_loss']:>6.3f} {r['tokens_per_s']:>6.0f} {r['sft_s']:>6.0f} "
            f"{r['eval_s']:>6.0f} {r['success']:>8.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS),
                        help="run only these (repeatable; default: all)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--threads", type=int, help="torch threads per run (OMP_NUM_THREADS)")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    work = args.workdir or Path(tempfile.mkdtemp(prefix="chain-cal-"))
    rows = []
    for name in args.preset or list(PRESETS):
        print(f"[{name}] {PRESETS[name]}", flush=True)
        rows.append(calibrate(name, PRESETS[name], work))
        print_table(rows[-1:])
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
