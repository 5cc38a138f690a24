"""Training throughput: OREO and SFT non-pad tokens/s, pad fraction and peak memory, with
length-grouped batches (what `oreo train` does) against plain random batches.

    python benchmarks/train_throughput.py                                  # tiny Llama, CPU
    python benchmarks/train_throughput.py --random-arch qwen2-1.5b --dtype bf16 --peak-tflops 989

The data are OREO-math rows made from ``oreo/GSMSymbolic-v0``: per task its gold solution
(reward 1) and a short wrong answer (reward 0), so episode lengths vary about four-fold. Every
run calls `run_train` for 1 + ``--epochs`` epochs and measures all but the first (each measured
epoch holds every episode once, so both batchings train on the same tokens; the first epoch is
the warm-up, which keeps first-call costs such as CUDA's kernel selection and the allocator's
growth out of the numbers). Runs are separate
processes so each has its own peak memory: peak RSS on CPU (`resource.getrusage`, with the
growth over the RSS before training), ``torch.cuda.max_memory_allocated`` on a GPU.

Torch runs on one CPU thread unless ``--threads`` says otherwise: on a shared machine with
more busy processes than cores, two OpenMP threads wait on each other at every barrier and one
forward + backward of the tiny model took 40x longer than on one thread.

Random batching is ``length_grouping=False`` (a seeded shuffle cut into batches of the same
size). The checkpoint written after the last step is outside the measured steps. Tokens/s are
`run_train`'s own per-step ``tokens_per_s``, combined over the measured steps with each step's
non-pad token count.

MFU (GPU only) counts 6 x params FLOPs per non-pad token for each trained model (policy, and
the value model for OREO) and 2 x params for the frozen reference's forward, attention
excluded (nanoGPT's estimate), over ``--peak-tflops`` (H100 SXM dense bf16: 989). Prints a
table; asserts nothing. Absolute CPU numbers describe only the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from oreo_agents.models.tiny import QWEN2


def write_data(path: Path, tasks: int) -> None:
    """OREO-math JSONL: a gold solution and a short wrong answer for each of ``tasks`` tasks."""
    import gymnasium

    import oreo_envs  # noqa: F401 - registers the ids

    env = gymnasium.make("oreo/GSMSymbolic-v0", size=max(tasks, 64)).unwrapped
    rows = []
    for task_id in env.task_ids[:tasks]:
        task = env.task(task_id)
        prompt = env.prompt(task)
        rows.append({"prompt": prompt, "response": " " + task.solution, "reward": 1})
        rows.append({"prompt": prompt, "response": " No idea.\n#### 0", "reward": 0})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_model(folder: Path, args: argparse.Namespace) -> None:
    """The tiny Llama, or a Qwen2-shaped model with random weights, and the byte tokenizer."""
    from oreo_agents.models.tiny import random_qwen2, tiny_model

    if not args.random_arch:
        tiny_model(folder, hidden_size=args.hidden_size, num_layers=args.layers)
        return
    import torch

    model, tok = random_qwen2(args.random_arch, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def param_counts(folder: Path) -> tuple[int, int]:
    """Params that do matmuls per token, counted on the meta device (no weights): the causal LM
    (its tied embedding counted once, as the output layer) and the value model (backbone without
    the embedding lookup, plus the ``Linear(hidden, 1)`` head)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        lm = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        backbone = AutoModel.from_config(config)
        body = sum(p.numel() for p in backbone.parameters())
        body -= backbone.get_input_embeddings().weight.numel()
    return lm, body + config.hidden_size + 1


def train_once(cfg_values: dict[str, Any], grouped: bool, threads: int) -> dict[str, Any]:
    """One `run_train` in this (fresh) process: tokens, time and memory after epoch 1."""
    import torch

    from oreo_agents.data.batches import prepare
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.training.config import TrainConfig
    from oreo_agents.training.loop import run_train

    torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict({**cfg_values, "length_grouping": grouped})
    plan = prepare(cfg, load_tokenizer(cfg.model))
    micro = plan.micro_batches()
    steps = [micro[i : i + plan.accumulation] for i in range(0, len(micro), plan.accumulation)]
    tokens = [sum(int(b["attention_mask"].sum()) for b in s) for s in steps]
    slots = [sum(b["attention_mask"].numel() for b in s) for s in steps]
    del micro, steps  # run_train builds its own: keep ours out of the peak RSS
    records: list[dict[str, Any]] = []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    run_train(cfg, log=records.append)
    measured = range(len(tokens) // cfg.epochs, len(tokens))  # all but the first epoch
    seconds = sum(tokens[i] / records[i]["tokens_per_s"] for i in measured)
    cuda = torch.cuda.is_available()
    return {
        "steps": len(measured),
        "tokens": sum(tokens[i] for i in measured),
        "slots": sum(slots[i] for i in measured),
        "seconds": seconds,
        "rss_before": rss_before,
        "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "gpu_peak": torch.cuda.max_memory_allocated() if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random-arch", choices=sorted(QWEN2), help="random Qwen2-shaped model")
    parser.add_argument("--hidden-size", type=int, default=64, help="tiny model only")
    parser.add_argument("--layers", type=int, default=2, help="tiny model only")
    parser.add_argument("--algos", nargs="+", default=["oreo", "sft"])
    parser.add_argument("--tasks", type=int, default=64, help="2 episodes per task")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--epochs", type=int, default=2, help="measured, after a warm-up one")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (see above)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="for MFU, GPU only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_data(tmp / "data.jsonl", args.tasks)
        write_model(tmp / "model", args)
        lm_params, value_params = param_counts(tmp / "model")
        results = []
        for algo in args.algos:
            for grouped in (True, False):
                cfg = {
                    "algo": algo, "data": str(tmp / "data.jsonl"), "model": str(tmp / "model"),
                    "out": str(tmp / f"{algo}-{grouped}"), "epochs": 1 + args.epochs,
                    "batch_size": args.batch_size, "micro_batch_size": args.micro_batch_size,
                    "mixed_precision": "bf16" if args.dtype == "bf16" else "no",
                    "gradient_checkpointing": args.gradient_checkpointing,
                }  # fmt: skip
                spawn = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    result = pool.submit(train_once, cfg, grouped, args.threads).result()
                result.update(algo=algo, grouped=grouped)
                results.append(result)
                name = "length-grouped" if grouped else "random"
                rate = result["tokens"] / result["seconds"]
                print(f"{algo} {name}: {rate:,.0f} tokens/s", flush=True)
    model = args.random_arch or f"tiny Llama (hidden {args.hidden_size}, {args.layers} layers)"
    print(
        f"{model}: {lm_params / 1e6:.2f}M params (value model {value_params / 1e6:.2f}M); "
        f"{2 * args.tasks} episodes, batch {args.batch_size}, micro-batch "
        f"{args.micro_batch_size}, {args.dtype}; measured: {args.epochs} epochs after a warm-up one"
    )
    print_table(args, results, lm_params, value_params)


def flops_per_token(algo: str, lm_params: int, value_params: int) -> int:
    """Training FLOPs per token: 6N per trained model, 2N for the reference forward."""
    from oreo_agents.algorithms import get_algorithm

    spec = get_algorithm(algo)
    return 6 * lm_params + 6 * value_params * spec.trains_value + 2 * lm_params * spec.reference


def print_table(args, results, lm_params: int, value_params: int) -> None:
    from rich.console import Console
    from rich.table import Table

    device = results[0]["device"]
    on_gpu = device != "cpu"
    rates = {(r["algo"], r["grouped"]): r["tokens"] / r["seconds"] for r in results}
    table = Table(
        title=f"Training throughput on {device}",
        caption="tokens/s and memory: "
        + ("this GPU" if on_gpu else "this machine's CPU, noisy (shared cores)")
        + "; ratio: length-grouped over random batching, measured in this run",
    )
    header = ["algo", "batching", "steps", "non-pad tokens", "pad fraction", "tokens/s", "ratio"]
    header += ["peak GPU mem", "MFU"] if on_gpu else ["peak RSS", "RSS growth"]
    for column in header:
        table.add_column(column, justify="right")
    for r in results:
        rate = rates[(r["algo"], r["grouped"])]
        row = [
            r["algo"],
            "length-grouped" if r["grouped"] else "random",
            str(r["steps"]),
            f"{r['tokens']:,}",
            f"{1 - r['tokens'] / r['slots']:.1%}",
            f"{rate:,.0f}",
            f"{rate / rates[(r['algo'], False)]:.2f}x" if (r["algo"], False) in rates else "-",
        ]
        if on_gpu:
            flops = flops_per_token(r["algo"], lm_params, value_params) * rate
            row += [f"{r['gpu_peak'] / 2**30:.1f} GiB", f"{flops / args.peak_tflops / 1e12:.1%}"]
        else:
            row += [f"{r['rss_peak'] / 2**20:,.0f} MiB"]
            row += [f"{(r['rss_peak'] - r['rss_before']) / 2**20:,.0f} MiB"]
        table.add_row(*row)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
