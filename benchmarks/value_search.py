"""Why value-guided beam search loses to greedy on the demo's task: OREO variants trained from one
demo seed's SFT policy and samples, each evaluated greedy, as a best-of-4 reranker (with the value
model's AUROC) and with beam search at two temperatures.

Run by hand after ``oreo demo --out runs/paper/seed0`` (CPU; 2-4 minutes a variant, the
``--big`` collection of 32,000 episodes and its run about 15 minutes more)::

    python benchmarks/value_search.py --seed-dir runs/paper/seed0 --out runs/value_search

Every run and evaluation is a folder or file under ``--out`` and is skipped when present, so
a re-run resumes and only prints the table. ``--ceiling`` adds a value model trained for nothing
but predicting the final reward (MC regression at the last token), the most a value model of
this size learns to rank from these episodes. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oreo_agents.evaluation.strategies import get_strategy

ENV = ["--env", "oreo/Chain-v0", "--split", "test", "-o", "size=200"]
# name: (algo, epochs, value lr, extra --set pairs, data)
VARIANTS = {
    "demo": ("oreo", 1, 3e-4, (), "samples"),
    "tok-e3-v1e-3": ("oreo", 3, 1e-3, (), "samples"),
    "step-e3-v1e-3": ("oreo-step", 3, 1e-3, (), "samples"),
    "tok-e6-v1e-3": ("oreo", 6, 1e-3, (), "samples"),
    "tok-e3-v3e-3": ("oreo", 3, 3e-3, (), "samples"),
    **{f"tok-beta{b}": ("oreo", 3, 1e-3, (f"beta={b}",), "samples") for b in (0.01, 0.1, 0.3)},
    **{f"tok-alpha{a}": ("oreo", 3, 1e-3, (f"alpha={a}",), "samples") for a in (0.0, 0.1, 1.0)},
}
BIG = {"tok-big-e2-v1e-3": ("oreo", 2, 1e-3, (), "big")}


def oreo(*args: object) -> None:
    cmd = [sys.executable, "-m", "oreo_cli", *map(str, args)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{run.stdout[-2000:]}{run.stderr[-2000:]}")


def train(seed_dir: Path, out: Path, name: str, spec: tuple, data: Path) -> Path:
    algo, epochs, value_lr, extra, _ = spec
    dest = out / name
    if not (dest / "value" / "oreo_value.json").exists():
        sets = ["lr=1e-4", f"value_lr={value_lr}", "max_length=256", "warmup_ratio=0.03",
                "report_to=none", *extra]  # fmt: skip
        oreo(
            "train", "--algo", algo, "--data", data, "--model", seed_dir / "sft" / "policy",
            "--out", dest, "--epochs", epochs, "--batch-size", 32, "--micro-batch-size", 16,
            "--seed", 0, *[x for s in sets for x in ("--set", s)],
        )  # fmt: skip
    return dest


def evaluate(run: Path, strategy: str, temperature: float, k: int = 1) -> dict:
    dest = run / f"ev-{strategy}-T{temperature}-k{k}.json"
    if not dest.exists():
        spec = get_strategy(strategy)
        extra = [x for k, v in spec.env_options.items() for x in ("-o", f"{k}={v}")]
        if spec.ranked:
            extra += ["--value", run / "value"]
        oreo(
            "rollout", *ENV, *extra, "--policy", run / "policy", "--out", dest, "--tasks", 200,
            "--strategy", strategy, "--max-new-tokens", 96, "--batch-size", 64, "--seed", 0,
            "--temperature", temperature, "-k", k,
        )  # fmt: skip
    return json.loads(dest.read_text())


def row(name: str, run: Path, short: bool) -> list[str]:
    greedy = evaluate(run, "greedy", 0.0)
    bok = evaluate(run, "best-of-k", 1.0, k=4)
    beam_hot = None if short else evaluate(run, "beam", 1.0)
    beam = evaluate(run, "beam", 0.5)
    auroc = bok.get("value_auroc", {})
    if not auroc:  # reports written before value_auroc existed
        from oreo_agents.evaluation.metrics import value_auroc

        auroc = value_auroc(bok["records"])
    cells = [greedy["success_rate"], bok["pass_at_k"]["1"], bok["maj_at_k"]["4"],
             bok["value_at_k"]["4"]]  # fmt: skip
    return [
        name, *(f"{x:.1%}" for x in cells), f"{auroc.get('within_task', float('nan')):.2f}",
        "-" if beam_hot is None else f"{beam_hot['success_rate']:.1%}",
        f"{beam['success_rate']:.1%}",
    ]  # fmt: skip


def ceiling(seed_dir: Path, data: Path, out: Path, epochs: int = 2) -> dict:
    """A value model trained only to predict the final reward: MC regression at the last token
    from the SFT backbone (head lr 1e-2, backbone 1e-3, batch 64), ranked on the test samples of
    the ``tok-e3-v1e-3`` run's best-of-4 report."""
    import gymnasium
    import torch

    import oreo_envs  # noqa: F401
    from oreo_agents.data.episodes import load_episodes
    from oreo_agents.evaluation.metrics import value_auroc
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.models.scorer import ValueScorer
    from oreo_agents.models.value import ValueModel

    dest = out / "ceiling.json"
    if dest.exists():
        return json.loads(dest.read_text())
    torch.manual_seed(0)
    rng = random.Random(0)
    sft = str(seed_dir / "sft" / "policy")
    model = ValueModel.from_pretrained(sft)
    scorer = ValueScorer(model, load_tokenizer(sft), batch_size=64)
    opt = torch.optim.AdamW(
        [{"params": model.head.parameters(), "lr": 1e-2},
         {"params": model.backbone.parameters(), "lr": 1e-3}], weight_decay=0.0,
    )  # fmt: skip
    rows = [(scorer.encode(e.prompt, e.response), e.reward) for e in load_episodes(data)]
    report = evaluate(out / "tok-e3-v1e-3", "best-of-k", 1.0, k=4)
    env = gymnasium.make("oreo/Chain-v0", size=200, split="test").unwrapped
    records = report["records"]
    prompts = [env.prompt(env.task(r["task_id"])) for r in records for _ in r["samples"]]
    texts = [s["text"] for r in records for s in r["samples"]]
    result = {"episodes": len(rows), "epochs": []}
    for _ in range(epochs):
        rng.shuffle(rows)
        model.train()
        for i in range(0, len(rows) - 63, 64):
            chunk = rows[i : i + 64]
            width = max(len(x) for x, _ in chunk)
            ids = torch.zeros((64, width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, (x, _) in enumerate(chunk):
                ids[j, : len(x)] = torch.tensor(x)
                mask[j, : len(x)] = 1
            values = model(ids, mask)[torch.arange(64), mask.sum(1) - 1]
            loss = ((values - torch.tensor([r for _, r in chunk])) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        scores = iter(scorer(prompts, texts))
        scored = [{"samples": [dict(s, value=next(scores)) for s in r["samples"]]}
                  for r in records]  # fmt: skip
        result["epochs"].append(value_auroc(scored))
    dest.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed-dir", type=Path, required=True, help="an oreo demo output")
    parser.add_argument("--out", type=Path, default=Path("runs/value_search"))
    parser.add_argument("--big", action="store_true", help="also 8x the data (32,000 episodes)")
    parser.add_argument("--ceiling", action="store_true", help="also the MC-regression ceiling")
    args = parser.parse_args()
    samples = args.seed_dir / "samples-r0"
    big = args.out / "samples-big"
    if (args.big or args.ceiling) and not (big / "manifest.json").exists():
        oreo(
            "collect", "--env", "oreo/Chain-v0", "--split", "train", "-o", "size=8000",
            "--model", args.seed_dir / "sft" / "policy", "--out", big, "-k", 8, "--tasks", 4000,
            "--max-new-tokens", 96, "--temperature", 1.0, "--batch-size", 64, "--seed", 7,
            "--backend", "hf",
        )  # fmt: skip
    variants = {**VARIANTS, **(BIG if args.big else {})}
    table = Table(title=f"OREO variants from {args.seed_dir} (200 test tasks)")
    cols = ("run", "greedy", "sample", "maj@4", "value@4", "AUROC in task", "beam T=1",
            "beam T=0.5")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, spec in variants.items():
        if name == "demo":
            run = args.seed_dir / "oreo-r0"
        else:
            run = train(args.seed_dir, args.out, name, spec, big if spec[4] == "big" else samples)
        table.add_row(*row(name, run, short=name.startswith(("tok-beta", "tok-alpha"))))
    Console(width=120).print(table)
    if args.ceiling:
        print("MC-regression ceiling, AUROC per epoch:", ceiling(args.seed_dir, big, args.out))


if __name__ == "__main__":
    main()
