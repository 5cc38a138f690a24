"""Choose the ALFWorld agent's SFT recipe on held-out train games (issue 36, item 3).

Run by hand (it prints a table and asserts nothing; every step resumes)::

    python benchmarks/alfworld_sft_choice.py --data ../shared/data/alfworld --out runs/sft-choice \
        --variants 0x3 0x6 0x6r 0x3r

Each variant ``GAMESxEPOCHS`` (``r`` at the end: with the task reminder, ``--remind-task``, in
its episodes and its evaluation) is the agent of `benchmarks/alfworld_agents.py` (a from-scratch
Llama, BPE tokenizer trained on its expert episodes) with SFT on expert episodes of a seeded
sample of GAMES ``train_fit`` games (0: all 3,339) for EPOCHS epochs, then evaluated greedy,
ranking the admissible actions, on ``train_heldout``: 214 train games of tasks no variant
trained on (`oreo_envs.alfworld.data`). The evaluation splits are never read, so the recipe
chosen here can be evaluated on them once.

The table: each variant's optimizer steps, final SFT loss, training wall time, held-out
success with its 95% Wilson interval, games won / lost against the first variant on the same
games, and how many lost games began by taking another object than the task's (`wrong_first`:
the agent did not hold on to its goal). ``--out``/``summary.json`` keeps the numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alfworld_agents import ENV, data_dir, init_model, sh, stage  # noqa: E402

HELDOUT = "train_heldout"


def variant(text: str) -> tuple[int, int, bool]:
    """``GAMESxEPOCHS`` or ``GAMESxEPOCHSr`` -> (games, epochs, remind)."""
    games, _, epochs = text.partition("x")
    remind = epochs.endswith("r")
    try:
        return int(games), int(epochs.removesuffix("r")), remind
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a variant is GAMESxEPOCHS[r] (e.g. 0x3 or 0x3r), not {text!r}"
        ) from None


def name(games: int, epochs: int, remind: bool) -> str:
    return f"{games or 'all'}x{epochs}{'r' if remind else ''}"


def experts(out: Path, where: list, games: int, remind: bool, seed: int) -> Path:
    """Expert episodes of a seeded sample of ``games`` train_fit games (0: all)."""
    store = out / f"expert-{games or 'all'}{'-remind' if remind else ''}"
    tasks = ["--tasks", games] if games else []
    with stage(out, store.name):
        sh(["collect", "--env", ENV, "-o", "split=train_fit", *where, "--model", "expert",
            *tasks, *reminder(remind), "--seed", seed, "--env-workers", 2,
            "--out", store])  # fmt: skip
    return store


def reminder(remind: bool) -> list[str]:
    return ["--remind-task"] if remind else []


def train(out: Path, expert: Path, label: str, epochs: int, seed: int) -> Path:
    """A fresh agent for this variant's episodes and its SFT; the run folder."""
    run = out / f"sft-{label}"
    init_model(run / "init", expert, seed, {"vocab_size": 1024, "hidden_size": 256,
                                             "num_layers": 4})  # fmt: skip
    with stage(out, run.name):
        sh(["train", "--algo", "sft", "--data", expert, "--model", run / "init", "--out", run,
            "--epochs", epochs, "--lr", 1e-3, "--batch-size", 16, "--micro-batch-size", 2,
            "--max-length", 2048, "--seed", seed, "--report-to", "none"])  # fmt: skip
    return run


def heldout(out: Path, run: Path, where: list, remind: bool, seed: int, games: int) -> dict:
    report = out / "eval" / f"{run.name}.json"
    if not report.exists():
        tasks = ["--tasks", games] if games else []
        with stage(out, f"eval {run.name}"):
            sh(["rollout", "--env", ENV, "-o", f"split={HELDOUT}", *where,
                "-o", "max_episode_steps=40", "--policy", run / "policy", *tasks,
                "--backend", "hf", "--seed", seed, "--env-workers", 2, "--batch-size", 64,
                "--rank-actions", *reminder(remind), "--out", report])  # fmt: skip
    return json.loads(report.read_text())


def last_steps(run: Path) -> dict:
    """The run's optimizer steps and the mean SFT loss of its last 10 (RUN/metrics.jsonl)."""
    path = run / "metrics.jsonl"
    logged = [r for r in map(json.loads, path.read_text().splitlines()) if "sft_loss" in r]
    if not logged:
        return {"steps": None, "final_loss": None}
    tail = [r["sft_loss"] for r in logged[-10:]]
    return {"steps": logged[-1]["step"], "final_loss": sum(tail) / len(tail)}


def wrong_first(record: dict) -> bool:
    """Whether an episode's first ``take`` picked another object than its task's (ALFWorld's
    task id names the object: ``<type>-<Object>-<...>/<trial>``)."""
    goal = record["task_id"].split("-")[1].lower()
    taken = re.search(r"(?:^|\n> )take (\w+) \d+ from", record["samples"][0]["text"])
    return taken is not None and taken.group(1) != goal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/alfworld"))
    ap.add_argument("--out", type=Path, default=Path("runs/sft-choice"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--variants",
        type=variant,
        nargs="+",
        default=[(0, 3, False), (0, 6, False), (0, 6, True), (0, 3, True)],
        help="GAMESxEPOCHS[r] each (module docstring)",
    )
    ap.add_argument("--heldout-games", type=int, default=0, help="0: all 214")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    where = ["-o", f"data_dir={data_dir(args.data, args.out)}"]
    rows = []
    for games, epochs, remind in args.variants:
        label = name(games, epochs, remind)
        run = args.out / f"sft-{label}"
        if not (args.out / "eval" / f"{run.name}.json").exists():  # else: trained, evaluated
            expert = experts(args.out, where, games, remind, args.seed)
            train(args.out, expert, label, epochs, args.seed)
        report = heldout(args.out, run, where, remind, args.seed, args.heldout_games)
        stages = json.loads((args.out / "stages.json").read_text())
        rows.append({
            "variant": label, "games": games, "epochs": epochs, "remind_task": remind,
            **last_steps(run), "train_s": stages.get(run.name),
            "success_rate": report["success_rate"], "ci95": report["ci95"],
            "wins": {r["task_id"]: r["success"] for r in report["records"]},
            "eval_s": round(report["timings"]["total_s"], 1),
            "lost_wrong_first": sum(not r["success"] and wrong_first(r) for r in report["records"]),
        })  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


def table(rows: list[dict]) -> str:
    first = rows[0]["wins"]
    out = [f"held-out train games ({HELDOUT}, {len(first)} games), greedy by ranked actions",
           "", "| variant (games x epochs, r: task reminder) | steps | final loss | train s "
           f"| success (95% CI) | vs {rows[0]['variant']}: won / lost "
           "| lost, wrong object taken first | eval s |",
           "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lo, hi = r["ci95"]
        won = sum(r["wins"][t] > first[t] for t in first)
        lost = sum(r["wins"][t] < first[t] for t in first)
        loss = "" if r["final_loss"] is None else f"{r['final_loss']:.3f}"
        out.append(f"| {r['variant']} | {r['steps']} | {loss} | {r['train_s']} | "
                   f"{r['success_rate']:.1%} ({lo:.1%}-{hi:.1%}) | {won} / {lost} | "
                   f"{r['lost_wrong_first']} | {r['eval_s']} |")  # fmt: skip
    return "\n".join(out)


if __name__ == "__main__":
    main()
