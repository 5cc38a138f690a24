"""Cost of value-guided beam search vs greedy decoding and best-of-N reranking (no asserts).

For each method: tokens generated, tokens run through the value model, and wall time, per
problem. Best-of-N uses N = B^2 samples, the candidates beam search draws per step, and every
method has the same per-path budget (``--max-steps`` steps of ``--step-tokens`` tokens), so
the rows compare equal sample budgets. A random tiny model on CPU by default; pass ``--policy``
and ``--value`` folders (``oreo train`` OUT/policy, OUT/value) and run on a GPU for real numbers.

    python benchmarks/search_cost.py --problems 4 --beam-widths 2,4
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from rich.console import Console
from rich.table import Table

from oreo_agents.data.inputs import encode_prompt
from oreo_agents.evaluation.search import beam_search
from oreo_agents.generation import SamplingParams
from oreo_agents.generation.hf import HFBackend
from oreo_agents.models.scorer import ValueScorer
from oreo_agents.models.value import ValueModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", help="Policy folder (default: a random tiny Llama).")
    parser.add_argument("--value", help="Value folder (default: the policy with a random head).")
    parser.add_argument(
        "--value-form", choices=("last", "logprob"), default="logprob",
        help="the form of the default random value (oreo demo's default value is logprob)",
    )  # fmt: skip
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument(
        "--demo", action="store_true",
        help="prompts of oreo demo's test tasks (for --policy / --value of a demo run)",
    )  # fmt: skip
    parser.add_argument("--beam-widths", default="2,4")
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--step-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="Keep each method's fastest run.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        policy = args.policy or _tiny(tmp)
        backend = HFBackend(policy, batch_size=64)
        if args.value:
            scorer = ValueScorer.from_pretrained(args.value, backend.tokenizer, batch_size=64)
        else:
            model = ValueModel.from_pretrained(policy, form=args.value_form)
            torch.manual_seed(args.seed)
            torch.nn.init.normal_(model.head.weight, std=0.1)  # distinct values, as if trained
            if args.value_form == "logprob":
                torch.nn.init.constant_(model.head.logprob_weight, 0.1)
            scorer = ValueScorer(model.to(backend.device), backend.tokenizer, batch_size=64)
        prompts = _prompts(args.problems, args.demo)
        backend.generate(prompts[:1], SamplingParams(max_new_tokens=8))  # warm-up
        runs = [lambda: _greedy(backend, prompts, args)]
        for width in (int(b) for b in args.beam_widths.split(",")):
            runs.append(lambda n=width * width: _best_of_n(backend, scorer, prompts, n, args))
            runs.append(lambda b=width: _beam(backend, scorer, prompts, b, args))
        # Shared CPUs make single timings noisy: the fastest of a few runs is the cost.
        rows = [
            min((run() for _ in range(args.repeats)), key=lambda r: r["seconds"]) for run in runs
        ]
    _print(rows, args, str(backend.device))


def _tiny(folder: str) -> str:
    from oreo_agents.models.tiny import tiny_model

    tiny_model(folder, seed=0)
    return folder


def _prompts(n: int, demo: bool) -> list[str]:
    """The first ``n`` test prompts of GSM-Symbolic, or with ``demo`` of `oreo demo`'s task."""
    import gymnasium

    import oreo_envs  # noqa: F401

    if demo:
        from oreo_agents.recipes.demo import ENV_ID, demo_config

        env = gymnasium.make(ENV_ID, **demo_config("unused").task_options("test"))
    else:
        env = gymnasium.make("oreo/GSMSymbolic-v0", size=max(n, 1))
    u = env.unwrapped
    return [u.prompt(u.task(t)) for t in u.task_ids[:n]]


def _greedy(backend, prompts, args) -> dict:
    budget = args.max_steps * args.step_tokens
    start = time.perf_counter()
    outs = backend.generate(prompts, SamplingParams(max_new_tokens=budget, temperature=0.0))
    tokens = sum(len(c.token_ids) for (c,) in outs)
    return _row("greedy", 1, tokens, 0, time.perf_counter() - start, len(prompts))


def _best_of_n(backend, scorer, prompts, n, args) -> dict:
    budget = args.max_steps * args.step_tokens
    scored = scorer.scored_tokens
    start = time.perf_counter()
    params = SamplingParams(n=n, max_new_tokens=budget, temperature=1.0, seed=args.seed)
    outs = backend.generate(prompts, params)
    tok = backend.tokenizer
    scorer([encode_prompt(tok, p) + c.token_ids for p, cs in zip(prompts, outs, strict=True)
            for c in cs])  # fmt: skip
    tokens = sum(len(c.token_ids) for cs in outs for c in cs)
    elapsed = time.perf_counter() - start
    return _row(
        f"best-of-{n} (value)", n, tokens, scorer.scored_tokens - scored, elapsed, len(prompts)
    )


def _beam(backend, scorer, prompts, width, args) -> dict:
    scored = scorer.scored_tokens
    start = time.perf_counter()
    results = beam_search(
        backend, scorer, prompts, beam_width=width, max_steps=args.max_steps,
        max_new_tokens=args.step_tokens, seed=args.seed,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    tokens = sum(r.generated_tokens for r in results)
    samples = sum(r.candidates for r in results) / len(prompts)
    return _row(
        f"beam B={width}", samples, tokens, scorer.scored_tokens - scored, elapsed, len(prompts)
    )


def _row(method, samples, tokens, scored, elapsed, problems) -> dict:
    return {
        "method": method,
        "samples": samples,
        "tokens": tokens / problems,
        "scored": scored / problems,
        "seconds": elapsed / problems,
    }


def _print(rows, args, device) -> None:
    title = (
        f"search cost per problem ({device}; {args.problems} problems, paths of up to "
        f"{args.max_steps} steps x {args.step_tokens} tokens)"
    )
    table = Table(title=title, title_justify="left")
    for col in ("method", "candidates", "generated tokens", "value tokens", "s/problem",
                "x greedy time"):  # fmt: skip
        table.add_column(col, justify="right")
    base = rows[0]["seconds"]
    for r in rows:
        table.add_row(
            r["method"], f"{r['samples']:.0f}", f"{r['tokens']:.0f}", f"{r['scored']:.0f}",
            f"{r['seconds']:.2f}", f"{r['seconds'] / base:.1f}",
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
