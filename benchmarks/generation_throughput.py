"""Generation throughput: generated tokens/s at batch 1 against the collector's batch sizes.

    python benchmarks/generation_throughput.py                      # tiny random Llama, CPU
    python benchmarks/generation_throughput.py --random-arch qwen2-1.5b --device cuda --dtype bf16
    python benchmarks/generation_throughput.py --model Qwen/Qwen2.5-0.5B-Instruct --device cuda
    python benchmarks/generation_throughput.py --backend vllm --random-arch qwen2-0.5b

`oreo collect` advances all its episodes in lock-step and generates one batched call per round
(``--batch-size``, default 32), so what matters is how much faster a batch of B sequences is
than B sequences one at a time. Each batch size samples the same GSM8K-style prompts
(``oreo/GSMSymbolic-v0``) at temperature 1 with a fixed ``--max-new-tokens``, in calls of B
prompts each, after one untimed warm-up call. Tokens are what the model generated (an EOS
counts: it took a decoding step), so a row that stops early costs its batch time but adds no
tokens, as in collection.

``--random-arch`` builds a Qwen2-0.5B or -1.5B shaped model with random weights (no download)
and the byte tokenizer of `oreo_agents.models.tiny`, with the vocabulary padded to Qwen2's
151,936 so the output layer costs what it costs in the real model; byte tokens make prompts about 4x
longer than Qwen's tokenizer would. A random model rarely samples EOS, so every row runs to
``--max-new-tokens``. Tokens/s include the prompt's prefill, as every collection round pays
it. On CPU torch runs on one thread unless ``--threads`` says otherwise: on a shared machine
with more busy processes than cores, OpenMP threads wait on each other at every barrier and
timings lose all meaning. Prints a table; asserts nothing. Absolute tokens/s on CPU describe
only the machine it ran on; the speed-up column is the result.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from oreo_agents.models.tiny import QWEN2

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def gsm_prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` GSM8K-style prompts (cycling through a shuffled set of 64 tasks)."""
    import gymnasium

    import oreo_envs  # noqa: F401 - registers the ids

    env = gymnasium.make("oreo/GSMSymbolic-v0", size=64).unwrapped
    prompts = [env.prompt(env.task(task_id)) for task_id in env.task_ids]
    random.Random(seed).shuffle(prompts)
    return [prompts[i % len(prompts)] for i in range(n)]


def build_model(args: argparse.Namespace, tmp: Path):
    """(model, tokenizer, label, folder): the folder is None for an in-memory random model."""
    from oreo_agents.models.loading import load_causal_lm, load_tokenizer
    from oreo_agents.models.tiny import random_qwen2, tiny_model

    dtype = DTYPES[args.dtype]
    if args.model:
        tok = load_tokenizer(args.model)
        return load_causal_lm(args.model, device=args.device, dtype=dtype), tok, args.model
    if args.random_arch:
        model, tok = random_qwen2(args.random_arch, device=args.device, dtype=dtype)
        return model, tok, f"{args.random_arch} (random weights, byte tokenizer)"
    folder = tmp / "tiny"
    tiny_model(folder, hidden_size=args.hidden_size, num_layers=args.layers)
    tok = load_tokenizer(str(folder))
    model = load_causal_lm(str(folder), device=args.device, dtype=dtype)
    label = f"tiny Llama (hidden {args.hidden_size}, {args.layers} layers, random weights)"
    return model, tok, label


def make_backends(args, model, tok, tmp: Path):
    """``batch size -> backend``; one vLLM engine serves every batch size."""
    from oreo_agents.generation import load_backend

    if args.backend == "hf":
        return {b: load_backend("hf", model, tokenizer=tok, batch_size=b) for b in args.batch_sizes}
    path = args.model
    if path is None:  # vLLM loads from a folder: save the random model there
        path = str(tmp / "model")
        model.save_pretrained(path)
        tok.save_pretrained(path)
    del model
    torch.cuda.empty_cache()
    engine = load_backend(
        "vllm", path, max_num_seqs=max(args.batch_sizes), gpu_memory_utilization=0.85
    )
    return dict.fromkeys(args.batch_sizes, engine)


def measure(backend, prompts: list[str], batch: int, params) -> tuple[int, float, float]:
    """(generated tokens, seconds, share stopped by EOS) over calls of ``batch`` prompts."""
    from dataclasses import replace

    backend.generate(prompts[:batch], replace(params, max_new_tokens=4))  # warm-up, untimed
    tokens = eos = 0
    _sync()
    start = time.perf_counter()
    for i in range(0, len(prompts), batch):
        for (c,) in backend.generate(prompts[i : i + batch], params):
            tokens += len(c.token_ids) + (c.finish_reason == "eos")
            eos += c.finish_reason == "eos"
    _sync()
    return tokens, time.perf_counter() - start, eos / len(prompts)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a checkpoint folder or hub id (default: tiny random)")
    source.add_argument("--random-arch", choices=sorted(QWEN2), help="random Qwen2-shaped model")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="calls of B prompts per batch size")
    parser.add_argument("--min-prompts", type=int, default=16, help="at least this many prompts")
    parser.add_argument("--hidden-size", type=int, default=64, help="tiny model only")
    parser.add_argument("--layers", type=int, default=2, help="tiny model only")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (see above)")
    args = parser.parse_args()
    if args.backend == "vllm":
        from oreo_agents.generation.backends import vllm_available

        if not vllm_available():
            print("vllm is not installed (pip install 'oreo[vllm]', GPU only): skipped")
            return
    torch.set_num_threads(args.threads)
    if 1 not in args.batch_sizes:
        args.batch_sizes = [1, *args.batch_sizes]  # the speed-ups are relative to batch 1
    from oreo_agents.generation import SamplingParams

    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=1.0, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok, label = build_model(args, Path(tmp))
        backends = make_backends(args, model, tok, Path(tmp))
        rows = []
        for b in sorted(args.batch_sizes):
            prompts = gsm_prompts(max(b * args.rounds, args.min_prompts))
            tokens, seconds, eos = measure(backends[b], prompts, b, params)
            rows.append((b, len(prompts), tokens, seconds, eos))
            print(f"batch {b}: {tokens / seconds:,.1f} tokens/s", flush=True)
    print_table(args, label, rows)


def print_table(args, label: str, rows) -> None:
    from rich.console import Console
    from rich.table import Table

    base = rows[0][2] / rows[0][3]
    where = "this machine's CPU, noisy" if args.device == "cpu" else args.device
    print(
        f"{args.backend} generation, {label}, {args.dtype} on {args.device}; "
        f"GSM8K-style prompts, max_new_tokens={args.max_new_tokens}, temperature 1"
    )
    table = Table(caption=f"tokens/s: {where}; speed-up: against batch 1, in this run")
    for column in ["batch", "prompts", "tokens", "seconds", "tokens/s", "speed-up", "EOS early"]:
        table.add_column(column, justify="right")
    for b, n, tokens, seconds, eos in rows:
        rate = tokens / seconds
        table.add_row(
            str(b), str(n), str(tokens), f"{seconds:.2f}", f"{rate:,.1f}",
            f"{rate / base:.1f}x", f"{eos:.0%}",
        )  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
