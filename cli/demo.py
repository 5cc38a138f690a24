"""`oreo demo`: OREO vs rejection sampling, DPO and KTO on a task a CPU learns in minutes."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from oreo_agents.training.checkpoint import TrainingInterrupted
from oreo_cli.options import duration


def demo(
    out: Annotated[str, typer.Option(help="Output folder (re-run to resume).")] = "runs/demo",
    seed: Annotated[int, typer.Option(help="Seeds data, models and sampling.")] = 0,
    fast: Annotated[bool, typer.Option(help="A 15-second version (checks the pipeline).")] = False,
    full: Annotated[bool, typer.Option(help="Evaluate on 500 test tasks instead of 200.")] = False,
    rounds: Annotated[
        int, typer.Option(help="Collect+train rounds for OREO and rejection sampling.")
    ] = 1,
    oreo_algo: Annotated[str, typer.Option(help="oreo | oreo-step | oreo-response.")] = "oreo",
    ppo: Annotated[
        bool, typer.Option(help="Also train online PPO from the SFT policy (about 4.5 minutes).")
    ] = False,
) -> None:
    """SFT -> sample -> train OREO and the baselines from the same episodes -> evaluate."""
    from oreo_agents.recipes.demo import demo_config, run_demo, stage_names
    from oreo_agents.recipes.demo_times import expected_seconds

    console = Console()
    stages = None
    try:
        cfg = demo_config(
            out=out, seed=seed, fast=fast, full=full, rounds=rounds, oreo_algo=oreo_algo, ppo=ppo
        )
        with Stages(console, stage_names(cfg), expected_seconds(cfg)) as stages:
            report = run_demo(cfg, stages.start, progress=stages.advance)
    except TrainingInterrupted as e:
        console.print(
            f"[yellow]stopped by {signal.Signals(e.signum).name}[/] in {stages.current}: saved its "
            f"checkpoint of step {e.step}; finished stages are kept in {out}; re-run the same "
            "command to resume",
            soft_wrap=True,  # one line at any width
        )
        raise typer.Exit(128 + e.signum) from None
    except KeyboardInterrupt:
        where = f" in {stages.current}" if stages and stages.current else ""
        console.print(
            f"[yellow]interrupted[/]{where}: finished stages (and the episodes and checkpoints "
            f"of this one) are kept in {out}; re-run the same command to resume",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    except (ValueError, OSError, ImportError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    print_results(console, report, seed, fast)
    console.print(f"{report['total_s']:.0f} s; report {out}/report.json, plot {out}/demo.png")


def print_results(console: Console, report: dict, seed: int, fast: bool) -> None:
    """The demo's table, a row per method (and round), in 80 columns: the round in the method's
    name, the tasks in the title (every method is evaluated on the same ones), the interval in
    points without its % signs."""
    from oreo_agents.recipes.demo import round_label

    tasks = sorted({r["tasks"] for r in report["results"].values()})
    on = f"{tasks[0]} test tasks" if len(tasks) == 1 else "test tasks"
    title = f"{report['env']}, {on}, seed {seed}: success (greedy unless noted)"
    if fast:  # a model this small on 32 tasks: every method may show the same number
        title = f"PIPELINE CHECK (--fast), not a result: {title}"
    table = Table(
        title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0)
    )  # 80 columns
    for col in ("method", "success", "95% CI", *(["tasks"] if len(tasks) > 1 else []),
                "vs greedy", "lines", "AUROC"):  # fmt: skip
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for key, r in report["results"].items():
        low, high = r["ci95"]
        lines = r.get("lines", {}).get("line_accuracy")
        auroc = r.get("value_auroc", {}).get("within_task")
        table.add_row(
            round_label(key, report["config"]), f"{r['success_rate']:.1%}",
            f"{100 * low:.1f}-{100 * high:.1f}", *([str(r["tasks"])] if len(tasks) > 1 else []),
            vs_greedy(r.get("vs_greedy")), "" if lines is None else f"{lines:.1%}",
            "" if auroc is None else f"{auroc:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print(
        "vs greedy: a search row's success minus its policy's greedy success on the same tasks, "
        "in points, with the paired 95% interval; lines: right lines of the chains / lines; "
        "AUROC: within a test task, how often the value model (or the ORM) scores a right "
        "sample above a wrong one (0.5: chance)"
        + (
            "; OREO's value model is a verifier (the SFT policy trained further on the gold "
            "solutions, read in the log-probability form); OREO-paper is the paper's "
            "configuration (the value on the policy's own backbone)"
            if "paper-r0" in report["results"] else ""
        )
    )  # fmt: skip


def vs_greedy(d: dict[str, Any] | None) -> str:
    """A search row's difference from greedy in points with its paired interval, rounded to
    whole points: ``+10.5 [4, 17]``."""
    if d is None:
        return ""
    low, high = (100 * x for x in d["ci95"])
    return f"{100 * d['diff']:+.1f} [{low:.0f}, {high:.0f}]"


class Stages:
    """The demo's progress display: the current stage (its steps, episodes or tasks, with an
    ETA at its recent pace) under an overall line; a line per stage as it finishes.

    Use as a context manager; `start` and `advance` are `run_demo`'s ``stage`` and
    ``progress``.
    """

    def __init__(self, console: Console, names: list[str], expected: dict[str, float]):
        from oreo_agents.recipes.eta import StageClock

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Remaining(),
            TimeElapsedColumn(),
        )
        # a 2-minute window: an ETA that follows the stage's pace without jumping at each step
        self.progress = Progress(*columns, console=console, speed_estimate_period=120)
        self.names, self.current = names, ""
        self.clock = StageClock(expected)
        self.overall = self.progress.add_task("", total=len(names), clock=self.clock)
        self.task: Any = None
        self._describe(0)

    def __enter__(self) -> Stages:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self._finish()
        self.progress.stop()

    def start(self, name: str) -> None:
        done = self._finish()
        self.current = name
        self._describe(done)
        self.task = self.progress.add_task(f"  {name}", total=None)
        self.clock.start(name)

    def advance(self, done: float, total: float | None) -> None:
        # rich's pace leaves out the first update: a resumed stage's jump is not "speed"
        self.progress.update(self.task, completed=done, total=total)
        self.clock.progress(done, total)

    def _finish(self) -> int:
        """Close the current stage's row (a line above the display); returns stages done."""
        done = int(self._task(self.overall).completed)
        if self.task is None:
            return done
        task = self._task(self.task)
        size = f"{task.completed:g}/{task.total:g}  " if task.total else ""
        self.progress.console.print(
            f"[green]done[/] {self.current}  {size}{duration(task.elapsed or 0)}"
        )
        self.progress.remove_task(self.task)
        self.task = None
        self.clock.finish()
        self.progress.update(self.overall, completed=done + 1)
        return done + 1

    def _task(self, task_id: Any) -> Any:
        return next(t for t in self.progress.tasks if t.id == task_id)

    def _describe(self, done: int) -> None:
        text = f"[bold]demo[/] stage {min(done + 1, len(self.names))} of {len(self.names)}"
        self.progress.update(self.overall, description=text)


class _Remaining(ProgressColumn):
    """A stage's time left at its recent pace; on the overall line, the run's, from each
    stage's expected time scaled by this machine's pace (`StageClock`)."""

    def render(self, task: Any) -> Text:
        clock = task.fields.get("clock")
        left = clock.remaining() if clock is not None else task.time_remaining
        if left is None or task.finished:
            return Text("")
        return Text(f"ETA {duration(left)}", style="progress.remaining")
