"""`oreo collect`: run a model (or a scripted policy) in an env and log the episodes."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oreo_agents.rollout.config import CollectConfig
from oreo_agents.rollout.scripted import SCRIPTED
from oreo_agents.runtime.distributed import device, rank_world, wait_for_everyone
from oreo_cli.options import (
    ENV_OPTION,
    SPLIT,
    Flag,
    check_scripted_env,
    config_parameters,
    make_env,
    with_parameters,
)
from oreo_cli.options import env_options as env_options_of

FLAGS = {
    "model": Flag(names=("--model", "--policy")),
    "samples": Flag(names=("--samples", "-k")),
    "env_options": ENV_OPTION,
}


@with_parameters(
    [*config_parameters(CollectConfig, FLAGS), SPLIT],
    "Collect episodes: K samples per task, batched across envs, resumable, with a summary.",
)
def collect(*, env_options: list[str] | None, split: str | None, **values: Any) -> None:
    # Under torchrun / accelerate launch every process runs this; one reports progress.
    console = Console(quiet=rank_world()[0] != 0)
    try:
        cfg = CollectConfig(**values, env_options=env_options_of(env_options, split))
        run(cfg, console)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted[/]: finished episodes are saved in {values['out']}; "
            "re-run the same command to resume",
            soft_wrap=True,  # one line at any width
        )
        raise typer.Exit(130) from None
    except (ValueError, TypeError, OSError, ImportError) as e:
        # From any process; one line (a path such as "runs[2]" is not rich markup).
        Console().print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None


def run(cfg: Any, console: Console) -> None:
    """The recipe: backend -> envs -> collect with a progress bar -> summary table."""
    from oreo_agents.rollout.collect import run_collect, summarize
    from oreo_agents.rollout.scripted import scripted_policy

    backend, scripted = None, None
    options = dict(cfg.env_options)
    if cfg.model in SCRIPTED:
        check_scripted_env(cfg.model, cfg.env, options)  # one line, before any progress display
        scripted = scripted_policy(cfg.model, cfg.seed)
    else:
        from oreo_agents.generation import load_backend

        console.print(f"loading [bold]{cfg.model}[/] ({cfg.backend} backend)...")
        backend = load_backend(
            cfg.backend, cfg.model, batch_size=cfg.batch_size, device=device(),
            **cfg.backend_options(),
        )  # fmt: skip
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
    wait_for_everyone()  # the summary reads every rank's shards
    if rank_world()[0] == 0:
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
