"""Havrilla et al. 2024's comparison on ``oreo/Chain-v0``: SFT, expert iteration, PPO (sparse,
dense and ORM rewards), return-conditioned RL and OREO, with maj@1, maj@K, rerank@K, pass@K and
the samples each drew, per seed and as mean +- sd over seeds.

Run by hand (CPU; about 25 minutes per seed on 2 free cores at K = 32; it prints a table and
asserts nothing)::

    python benchmarks/havrilla_chain.py --out runs/havrilla --seeds 0 1 2 --k 32

``--fast`` runs the demo's ``--fast`` sizes (about 5 minutes; checks the pipeline). Per seed,
everything through the library's recipes and the public CLI, resumable:

1. ``oreo demo --rounds R --ppo`` (`run_demo`): SFT on 8,000 gold solutions, then from the
   same K=4 samples per train task of the SFT policy: OREO, rejection sampling, DPO, KTO, RCRL
   and an outcome reward model (ORM); rounds 2..R of expert iteration (afresh from SFT on every
   round's de-duplicated correct samples) and iterative OREO; PPO with the sparse reward.
2. ``oreo train --algo ppo --set reward=dense`` and ``--set reward=orm`` (the demo's ORM as
   the reward model), the demo's PPO settings otherwise.
3. ``oreo rollout`` of every policy on the demo's test tasks: greedy (maj@1, Havrilla et al.:
   one greedy sample) and K samples at temperature 1 reranked by the ORM (``--reranker``):
   maj@K (majority over final answers), rerank@K (the ORM's pick) and pass@K (any of K right;
   the unbiased estimator of Chen et al. 2021 at k < K); OREO's with its value model too
   (value@K), and OREO's value-guided beam search from the demo.

"line acc." is the share of the K samples' lines that are the gold line of their step, and
"lucky" the share of their successes that hold a wrong line (`oreo_envs.chain_env.line_labels`).
"samples" counts the episodes a method drew from its own policies while training (the SFT's
gold solutions are not counted; every method starts from the same SFT).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from oreo_agents.algorithms.rcrl import RCRLConfig
from oreo_agents.recipes.demo import ENV_ID, demo_config, run_demo
from oreo_cli.options import option_flags

OREO = [sys.executable, "-m", "oreo_cli"]
METRICS = ("maj@1", "maj@K", "rerank@K", "pass@K", "value@K", "line acc.", "lucky")
LOOP = ("micro_batch_size", "max_length", "lr", "batch_size")  # TrainConfig flags of cfg.ppo


def sh(args: list[Any]) -> None:
    subprocess.run([*OREO, *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def train_ppo(cfg: Any, sft: Path, out: Path, reward: list[str]) -> Path:
    """PPO from the SFT policy with the demo's settings and another reward."""
    train = option_flags(cfg.task_options("train"))
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in cfg.ppo.items() if k in LOOP]
    flags += [f"--set={k}={json.dumps(v)}" for k, v in cfg.ppo.items() if k not in LOOP]
    sh(["train", "--algo", "ppo", "--env", ENV_ID, *train, "--model", sft, "--out", out,
        "--seed", cfg.seed, "--report-to", "none", f"--set=max_new_tokens={cfg.max_new_tokens}",
        *flags, *reward])  # fmt: skip
    return out / "policy"


def rollout(cfg: Any, policy: Path, report: Path, extra: list[Any]) -> dict[str, Any]:
    """``oreo rollout`` on the demo's test tasks (skipped when its report exists)."""
    if not report.exists():
        test = option_flags(cfg.task_options("test"))
        sh(["rollout", "--env", ENV_ID, *test, "--policy", policy, "--tasks", cfg.test_tasks,
            "--seed", cfg.seed, "--max-new-tokens", cfg.max_new_tokens, "--backend", "hf",
            "--batch-size", 64, "--temperature", 1.0, "--out", report, *extra])  # fmt: skip
    return json.loads(report.read_text())


def run_seed(root: Path, seed: int, k: int, rounds: int, fast: bool) -> dict[str, dict[str, float]]:
    out = root / f"seed{seed}"
    cfg = demo_config(str(out / "demo"), seed=seed, rounds=rounds, ppo=True, fast=fast)
    demo = run_demo(cfg, stage=lambda name: print(f"[seed {seed}] {name}", flush=True))
    d, last = out / "demo", rounds - 1
    orm = d / "orm" / "value"
    print(f"[seed {seed}] PPO dense and ORM rewards", flush=True)
    ppo_dense = train_ppo(cfg, d / "sft" / "policy", out / "ppo-dense", ["--set=reward=dense"])
    ppo_orm = train_ppo(cfg, d / "sft" / "policy", out / "ppo-orm",
                        ["--set=reward=orm", f"--set=reward_model={orm}"])  # fmt: skip
    drawn = cfg.rl_tasks * cfg.samples  # one round's samples of the offline methods
    ppo_drawn = cfg.ppo["iterations"] * cfg.ppo["tasks"] * cfg.ppo["samples"]
    oreo_value = ["--value", d / f"oreo-r{last}" / "value"]
    methods: dict[str, tuple[str, Path, int, list[Any]]] = {  # slug: label, policy, samples, args
        "sft": ("SFT", d / "sft" / "policy", 0, []),
        "ei": (f"expert iteration ({rounds} rounds)", d / f"rft-r{last}" / "policy",
               rounds * drawn, []),
        "ppo": ("PPO sparse", d / "ppo" / "policy", ppo_drawn, []),
        "ppo-dense": ("PPO dense", ppo_dense, ppo_drawn, []),
        "ppo-orm": ("PPO ORM", ppo_orm, ppo_drawn, []),
        "rcrl": ("RCRL", d / "rcrl-r0" / "policy", drawn, ["--control", RCRLConfig().good]),
        "oreo": ("OREO", d / "oreo-r0" / "policy", drawn, ["--value", d / "oreo-r0" / "value"]),
    }  # fmt: skip
    if rounds > 1:
        methods["oreo-rounds"] = (f"OREO ({rounds} rounds)", d / f"oreo-r{last}" / "policy",
                                  rounds * drawn, oreo_value)  # fmt: skip
    rows: dict[str, dict[str, float]] = {}
    for slug, (name, policy, samples, extra) in methods.items():
        print(f"[seed {seed}] evaluate {name}", flush=True)
        control = extra if extra[:1] == ["--control"] else []
        greedy = rollout(cfg, policy, out / "eval" / f"{slug}-greedy.json", control)
        strategy = ["--strategy", "best-of-k" if "--value" in extra else "sample", "--k", k]
        sampled = rollout(cfg, policy, out / "eval" / f"{slug}-k{k}.json",
                          [*strategy, "--reranker", orm, *extra])  # fmt: skip
        row = {
            "maj@1": greedy["success_rate"],
            "maj@K": sampled["maj_at_k"][str(k)],
            "rerank@K": sampled["rerank_at_k"][str(k)],
            "pass@K": sampled["pass_at_k"][str(k)],
            "samples": samples,
        }
        if "value_at_k" in sampled:
            row["value@K"] = sampled["value_at_k"][str(k)]
        if "lines" in sampled:  # the K samples' chains against the gold chain
            row["line acc."] = sampled["lines"]["line_accuracy"]
            row["lucky"] = sampled["lines"].get("wrong_line_success_share", 0.0)
        rows[name] = row
    beam = demo["results"]["oreo+beam"]["success_rate"]
    beam_row = {"maj@1": beam, "samples": drawn * rounds}
    rows[f"OREO ({rounds} rounds) + value-guided beam (B={cfg.beam_width})"] = beam_row
    (out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def cell(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.1%}"
    return f"{statistics.mean(values):.1%} +- {statistics.stdev(values):.1%}"


def markdown(per_seed: dict[int, dict[str, dict[str, float]]], k: int) -> str:
    names = list(next(iter(per_seed.values())))
    cols = [m.replace("K", str(k)) for m in METRICS]
    lines = ["| method | " + " | ".join(cols) + " | samples |", "|---|" + "---|" * (len(cols) + 1)]
    for name in names:
        rows = [table[name] for table in per_seed.values() if name in table]
        cells = [cell([r[m] for r in rows if m in r]) for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {rows[0]['samples']:,} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/havrilla"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--k", type=int, default=32, help="samples per test task (K)")
    parser.add_argument("--rounds", type=int, default=3, help="expert iteration / OREO rounds")
    parser.add_argument("--fast", action="store_true", help="the demo's --fast sizes (a check)")
    args = parser.parse_args()
    per_seed = {s: run_seed(args.out, s, args.k, args.rounds, args.fast) for s in args.seeds}
    print(f"Command: `python {' '.join(sys.argv)}`; seeds {args.seeds}, mean +- sd\n")
    print(markdown(per_seed, args.k))


if __name__ == "__main__":
    main()
