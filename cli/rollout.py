"""`oreo rollout`: evaluate a policy (greedy, sampling, value-guided beam or best-of-K)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oreo_cli.options import env_options, make_env


def rollout(
    env: Annotated[str, typer.Option("--env", help="Env id (see `oreo envs`).")],
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            "--model",
            help="Hub id or folder of a causal LM (oreo train's OUT/policy), or a scripted "
            "policy for reference rows: 'expert', 'random', 'gold'.",
        ),
    ],
    out: Annotated[str, typer.Option("--out", help="Path of the JSON report.")],
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Env option KEY=VALUE (repeat).")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Shortcut for -o split=SPLIT.")] = None,
    tasks: Annotated[
        int | None, typer.Option(help="A seeded sample of N tasks (default all).")
    ] = None,
    value: Annotated[
        str | None, typer.Option(help="Value model folder (oreo train's OUT/value).")
    ] = None,
    strategy: Annotated[str, typer.Option(help="greedy | sample | beam | best-of-k.")] = "greedy",
    k: Annotated[int, typer.Option("--k", "-k", help="Samples per task / actions per step.")] = 1,
    beam_width: Annotated[int, typer.Option(help="Beam width B (B x B candidates/step).")] = 4,
    max_steps: Annotated[int, typer.Option(help="Beam search step limit (paper: 20).")] = 20,
    admissible: Annotated[
        bool, typer.Option(help="Agent best-of-k: score every admissible action.")
    ] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Token budget per generation.")] = 512,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (not greedy).")] = 1.0,
    backend: Annotated[str, typer.Option(help="auto | hf | vllm.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Episodes run side by side.")] = 32,
    seed: Annotated[int, typer.Option(help="Seeds task sample, envs and sampler.")] = 0,
    chat_template: Annotated[
        bool, typer.Option(help="Format prompts with the tokenizer's chat template.")
    ] = False,
    constrain_actions: Annotated[
        bool, typer.Option(help="Snap agent actions to the closest admissible one.")
    ] = False,
    env_workers: Annotated[
        int,
        typer.Option(help="Step the envs in N worker processes (CPU-heavy envs: ALFWorld)."),
    ] = 0,
    plot: Annotated[
        str | None, typer.Option(help="Also write a PNG: success by subset and vs k.")
    ] = None,
) -> None:
    """Evaluate a policy on an env split; write a JSON report (success_rate, pass@k, maj@k)."""
    from oreo_agents.evaluate import RolloutConfig

    console = Console()
    try:
        options = env_options(option, split)
        cfg = RolloutConfig(
            env=env,
            policy=policy,
            out=out,
            env_options=options,
            tasks=tasks,
            strategy=strategy,
            k=k,
            beam_width=beam_width,
            max_steps=max_steps,
            value=value,
            admissible=admissible,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            backend=backend,
            batch_size=batch_size,
            seed=seed,
            chat_template=chat_template,
            constrain_actions=constrain_actions,
            env_workers=env_workers,
        )
        run(cfg, console, plot)
    except (ValueError, TypeError, OSError, ImportError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None


def run(cfg: Any, console: Console, plot: str | None = None) -> None:
    """The recipe: policy (+ value) -> rollout with a progress bar -> report, table, plot."""
    from oreo_agents.evaluate import SCRIPTED, run_rollout, save_report

    backend, scripted, value_fn = None, None, None
    options = dict(cfg.env_options)
    if cfg.policy in SCRIPTED:
        from oreo_agents.collect import scripted_policy

        scripted = scripted_policy(cfg.policy, cfg.seed)
    else:
        from oreo_agents.generation import load_backend

        console.print(f"loading [bold]{cfg.policy}[/] ({cfg.backend} backend)...")
        backend = load_backend(cfg.backend, cfg.policy, batch_size=cfg.batch_size)
        if cfg.chat_template:
            options["tokenizer"] = backend.tokenizer
    if cfg.value is not None and cfg.strategy in ("greedy", "sample"):
        console.print(f"[yellow]note[/]: --strategy {cfg.strategy} does not use --value")
    elif cfg.value is not None:
        from oreo_agents.search import ValueScorer

        console.print(f"loading the value model [bold]{cfg.value}[/]...")
        value_fn = ValueScorer.from_pretrained(
            cfg.value, getattr(backend, "tokenizer", None), batch_size=cfg.value_batch_size
        )
    columns = (
        TextColumn(f"[bold]rollout[/] {cfg.strategy}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("rollout", total=None)
        report = run_rollout(
            cfg,
            lambda: make_env(cfg.env, options),
            backend=backend,
            value_fn=value_fn,
            scripted=scripted,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    path = save_report(report, cfg.out)
    print_report(console, report)
    console.print(f"report written to {path}")
    if plot:
        from oreo_agents.rollout_plot import plot_report

        console.print(f"plot written to {plot_report(report, plot)}")


def print_report(console: Console, report: dict) -> None:
    """The overall row (success with its 95% interval, curves, cost) and one table per subset."""
    title = f"{report['env']} ({report['split'] or 'default split'}): {report['model']}"
    table = Table(title=title, title_justify="left")
    cols = ["strategy", "tasks", "success", "95% CI"]
    cells = [
        report["strategy"],
        str(report["tasks"]),
        f"{report['success_rate']:.1%}",
        "{:.1%}-{:.1%}".format(*report["ci95"]),
    ]
    for curve, name in (("pass_at_k", "pass"), ("maj_at_k", "maj"), ("value_at_k", "value")):
        if curve in report:
            k = max(report[curve], key=int)
            cols.append(f"{name}@{k}")
            cells.append(f"{report[curve][k]:.1%}")
    if "within_task" in report.get("value_auroc", {}):
        cols.append("value AUROC in task")
        cells.append(f"{report['value_auroc']['within_task']:.2f}")
    cols += ["steps", "tokens/task", "s/task"]
    cells += [
        f"{report['mean_steps']:.1f}",
        f"{report['mean_tokens_per_task']:.0f}",
        f"{report['timings']['s_per_task']:.2f}",
    ]
    for col in cols:
        table.add_column(col, justify="right")
    table.add_row(*cells)
    console.print(table)
    for key, groups in report["subsets"].items():
        sub = Table(title=f"success by {key}", title_justify="left")
        sub.add_column(key)
        sub.add_column("tasks", justify="right")
        sub.add_column("success", justify="right")
        for label, row in groups.items():
            sub.add_row(label, str(row["tasks"]), f"{row['success_rate']:.1%}")
        console.print(sub)
