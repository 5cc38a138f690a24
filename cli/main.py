"""The ``oreo`` command: thin recipes over the library (docs/architecture.md)."""

from __future__ import annotations

import warnings

import typer
from rich.console import Console
from rich.table import Table

from oreo_cli import collect, convert, demo, play, rollout, train


def _one_line(message, category, filename, lineno, line=None) -> str:
    """A library warning as the CLI prints it: one line, without the source line that Python's
    default adds (the user did not write that code)."""
    return f"warning: {message}\n"


warnings.formatwarning = _one_line

app = typer.Typer(
    name="oreo",
    help="Gymnasium text envs with sparse verifiers, and OREO offline RL for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: rich's option tables cut flag names and defaults at 80 columns
    rich_markup_mode=None,
)
app.command("play", help=play.__doc__)(play.play)
app.command("collect")(collect.collect)
app.command("convert")(convert.convert)
app.command("train", cls=train._TrainCommand)(train.train)
app.command("rollout")(rollout.rollout)
app.command("demo")(demo.demo)


@app.command("envs")
def envs() -> None:
    """List every registered text env (plug-ins included) with a one-line description."""
    import oreo_envs

    table = Table(title="oreo envs", title_justify="left")
    table.add_column("id", style="bold cyan", no_wrap=True)
    table.add_column("description")
    for env_id, description in oreo_envs.list_envs():
        table.add_row(env_id, description)
    Console().print(table)
