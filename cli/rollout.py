"""`oreo rollout`: evaluate a policy (greedy, sampling, value-guided beam or best-of-K)."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from oreo_agents.evaluation.evaluate import RolloutConfig
from oreo_agents.runtime.distributed import device, rank_world
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
    "policy": Flag(names=("--policy", "--model")),
    "k": Flag(names=("--k", "-k")),
    "env_options": ENV_OPTION,
}
EXTRA = [
    SPLIT,
    inspect.Parameter(
        "plot",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None, typer.Option(help="Also write a PNG: success by subset and vs k.")
        ],
    ),
]


@with_parameters(
    [*config_parameters(RolloutConfig, FLAGS), *EXTRA],
    "Evaluate a policy on an env split; write a JSON report (success_rate, pass@k, maj@k).",
)
def rollout(
    *, env_options: list[str] | None, split: str | None, plot: str | None, **values: Any
) -> None:
    # Under torchrun / accelerate launch every process runs this; one reports progress.
    console = Console(quiet=rank_world()[0] != 0)
    try:
        cfg = RolloutConfig(**values, env_options=env_options_of(env_options, split))
        run(cfg, console, plot)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted[/]: no report was written to {values['out']} (it is written "
            "once every task has run); re-run the same command to evaluate again",
            soft_wrap=True,  # one line at any width
        )
        raise typer.Exit(130) from None
    except (ValueError, TypeError, OSError, ImportError) as e:
        # From any process; one line (a path such as "runs[2]" is not rich markup).
        Console().print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None


def run(cfg: Any, console: Console, plot: str | None = None) -> None:
    """The recipe: policy (+ value) -> rollout with a progress bar -> report, table, plot."""
    from oreo_agents.evaluation.evaluate import check_report_path, run_rollout, save_report
    from oreo_agents.evaluation.strategies import get_strategy
    from oreo_agents.rollout.scripted import SCRIPTED

    check_report_path(cfg.out)  # not after every task has run

    backend, scripted, value_fn = None, None, None
    options = dict(cfg.env_options)
    if cfg.policy in SCRIPTED:
        from oreo_agents.rollout.scripted import scripted_policy

        check_scripted_env(cfg.policy, cfg.env, options)  # one line, before any progress display
        scripted = scripted_policy(cfg.policy, cfg.seed)
    else:
        from oreo_agents.generation import load_backend

        console.print(f"loading [bold]{cfg.policy}[/] ({cfg.backend} backend)...")
        backend = load_backend(
            cfg.backend, cfg.policy, batch_size=cfg.batch_size, device=device(),
            **cfg.backend_options(),
        )  # fmt: skip
    if cfg.value is not None and not get_strategy(cfg.strategy).ranked:
        console.print(f"[yellow]note[/]: --strategy {cfg.strategy} does not use --value")
    elif "implicit" in cfg.scorer:
        console.print(f"loading the implicit value of [bold]{cfg.policy}[/] ({cfg.scorer})...")
        value_fn = _implicit(backend, cfg)
    elif cfg.value is not None:
        console.print(f"loading the value model [bold]{cfg.value}[/]...")
        value_fn = _scorer(cfg.value, backend, cfg)
    reranker_fn = None
    if cfg.reranker is not None:
        console.print(f"loading the reranker [bold]{cfg.reranker}[/]...")
        reranker_fn = _scorer(cfg.reranker, backend, cfg)
    columns = (
        TextColumn(f"[bold]rollout[/] {cfg.label}"),
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
            reranker_fn=reranker_fn,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    if rank_world()[0] != 0:
        return  # rank 0 writes the report of every rank's tasks
    path = save_report(report, cfg.out)
    print_report(console, report)
    console.print(f"report written to {path}")
    if plot:
        from oreo_agents.evaluation.plot import plot_report

        console.print(f"plot written to {plot_report(report, plot)}")


def _scorer(path: str, backend: Any, cfg: Any) -> Any:
    from oreo_agents.models.scorer import ValueScorer

    tokenizer = getattr(backend, "tokenizer", None)
    return ValueScorer.from_pretrained(
        path, tokenizer, batch_size=cfg.value_batch_size, device=device()
    )


def _implicit(backend: Any, cfg: Any) -> Any:
    from oreo_agents.models.scorer import ImplicitScorer

    return ImplicitScorer.from_run(
        cfg.policy, getattr(backend, "tokenizer", None), reference=cfg.reference, beta=cfg.beta,
        value=cfg.value, batch_size=cfg.value_batch_size, device=device(),
    )  # fmt: skip


def print_report(console: Console, report: dict) -> None:
    """The overall row (success with its 95% interval, curves, cost) and one table per subset."""
    title = f"{report['env']} ({report['split'] or 'default split'}): {report['model']}"
    cols = ["strategy", "tasks", "success", "95% CI"]
    cells = [
        report["strategy"],
        str(report["tasks"]),
        f"{report['success_rate']:.1%}",
        "{:.1%}-{:.1%}".format(*report["ci95"]),
    ]
    curves = (("pass_at_k", "pass"), ("maj_at_k", "maj"), ("value_at_k", "value"),
              ("rerank_at_k", "rerank"))  # fmt: skip
    for curve, name in curves:
        if curve in report:
            k = max(report[curve], key=int)
            cols.append(f"{name}@{k}")
            cells.append(f"{report[curve][k]:.1%}")
    if "within_task" in report.get("value_auroc", {}):
        cols.append("value AUROC in task")
        cells.append(f"{report['value_auroc']['within_task']:.2f}")
    if "lines" in report:
        cols.append("line acc.")
        cells.append(f"{report['lines']['line_accuracy']:.1%}")
    cols += ["steps", "tokens/task", "s/task"]
    cells += [
        f"{report['mean_steps']:.1f}",
        f"{report['mean_tokens_per_task']:.0f}",
        f"{report['timings']['s_per_task']:.2f}",
    ]
    console.print(row_table(console, title, cols, cells))
    if "embodied" in report:
        print_episodes(console, report["embodied"])
    for key, groups in report["subsets"].items():
        sub = Table(title=f"success by {key}", title_justify="left")
        sub.add_column(key)
        sub.add_column("tasks", justify="right")
        sub.add_column("success", justify="right")
        for label, row in groups.items():
            sub.add_row(label, str(row["tasks"]), f"{row['success_rate']:.1%}")
        console.print(sub)


def print_episodes(console: Console, block: dict) -> None:
    """An agent env's episodes (the report's ``embodied`` block): the games and step cap in the
    title; episodes won and lost, their mean steps, the share of actions answered "Nothing
    happens." and the share of lost episodes that end in a loop."""
    cap = block["step_cap"] if block["step_cap"] is not None else "none"
    title = (f"episodes: {len(block['games'])} games (sha256 {block['games_sha256'][:12]}), "
             f"step cap {cap}")  # fmt: skip
    cols = ("won", "lost", "steps won", "steps lost", "Nothing happens.", "lost in loop")
    cells = [
        str(block["won"]),
        str(block["lost"]),
        _either(block["mean_steps_won"], "{:.1f}"),
        _either(block["mean_steps_lost"], "{:.1f}"),
        f"{block['nothing_happens_rate']:.1%}",
        _either(block["loop_share_of_lost"], "{:.1%}"),
    ]
    console.print(row_table(console, title, cols, cells))


def row_table(console: Console, title: str, cols: list[str], cells: list[str]) -> Group:
    """One result under its title: a row under its column names, or, where that row is wider
    than the console, a column of (name, value) rows. A cell is never cut or wrapped, and the
    title keeps the console's width whatever the table's."""
    table = Table()
    for col in cols:
        table.add_column(col, justify="right", no_wrap=True)
    table.add_row(*cells)
    wide = console.options.update_width(10**4)  # the row's natural width, not the console's
    if Measurement.get(console, wide, table).maximum > console.width:
        table = Table(show_header=False)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        for col, cell in zip(cols, cells, strict=True):
            table.add_row(col, cell)
    return Group(Text(title, style="italic"), table)


def _either(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)
