"""`oreo collect`: run a model (or a scripted policy) in an env and log the episodes."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oreo_agents.collect import SCRIPTED
from oreo_cli.options import env_options, make_env


def collect(
    env: Annotated[str, typer.Option("--env", help="Env id (see `oreo envs`).")],
    out: Annotated[str, typer.Option("--out", help="Output folder (re-run to resume).")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "--policy",
            help="Hub id or folder of a causal LM, or a scripted policy: 'gold' (math envs' "
            "reference solutions), 'expert' (ALFWorld walkthroughs), 'random' (admissible "
            "actions).",
        ),
    ],
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Env option KEY=VALUE (repeat).")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Shortcut for -o split=SPLIT.")] = None,
    samples: Annotated[int, typer.Option("--samples", "-k", help="Episodes per task (K).")] = 1,
    tasks: Annotated[int | None, typer.Option(help="Number of tasks (default: all).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Token budget per action.")] = 512,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Top-k sampling (0 = off).")] = 0,
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
) -> None:
    """Collect episodes: K samples per task, batched across envs, resumable, with a summary."""
    from oreo_agents.collect import CollectConfig

    console = Console()
    try:
        options = env_options(option, split)
        cfg = CollectConfig(
            env=env,
            model=model,
            out=out,
            env_options=options,
            samples=samples,
            tasks=tasks,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            backend=backend,
            batch_size=batch_size,
            seed=seed,
            chat_template=chat_template,
            constrain_actions=constrain_actions,
            env_workers=env_workers,
        )
        run(cfg, console)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted[/]: finished episodes are saved in {out}; "
            "run the same command again to resume"
        )
        raise typer.Exit(130) from None
    except (ValueError, TypeError, OSError, ImportError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None


def run(cfg: Any, console: Console) -> None:
    """The recipe: backend -> envs -> collect with a progress bar -> summary table."""
    from oreo_agents.collect import run_collect, scripted_policy, summarize

    backend, scripted = None, None
    options = dict(cfg.env_options)
    if cfg.model in SCRIPTED:
        scripted = scripted_policy(cfg.model, cfg.seed)
    else:
        from oreo_agents.generation import load_backend

        console.print(f"loading [bold]{cfg.model}[/] ({cfg.backend} backend)...")
        backend = load_backend(cfg.backend, cfg.model, batch_size=cfg.batch_size)
        if cfg.chat_template:
            options["tokenizer"] = backend.tokenizer
    columns = (
        TextColumn("[bold]collect[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("collect", total=None, stats="")

        def on_plan(todo, done):
            if done:
                progress.console.print(f"resuming: {done} episodes already in {cfg.out}")
            progress.update(bar, total=todo)

        def on_episode(_episode, stats):
            r = stats.rates()
            text = (
                f"{r['episodes_per_s']:.2f} ep/s  {r['tokens_per_s']:.0f} tok/s  "
                f"success {r['success_rate']:.1%}"
            )
            progress.update(bar, advance=1, stats=text)

        run_collect(
            cfg,
            lambda: make_env(cfg.env, options),
            backend=backend,
            scripted=scripted,
            on_episode=on_episode,
            on_plan=on_plan,
        )
    _print_summary(console, summarize(cfg.out), cfg.out)


def _print_summary(console: Console, summary: dict, out: str) -> None:
    table = Table(title=f"episodes in {out}", title_justify="left")
    for col in ("episodes", "tasks", "success rate", f"pass@{summary['k']}", "steps", "tokens"):
        table.add_column(col, justify="right")
    table.add_row(
        str(summary["episodes"]),
        str(summary["tasks"]),
        f"{summary['success_rate']:.1%}",
        f"{summary['pass_at_k']:.1%}",
        f"{summary['mean_steps']:.1f}",
        f"{summary['mean_tokens']:.0f}",
    )
    console.print(table)
