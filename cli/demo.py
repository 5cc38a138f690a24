"""`oreo demo`: OREO vs rejection sampling, DPO and KTO on a task a CPU learns in minutes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def demo(
    out: Annotated[str, typer.Option(help="Output folder (re-run to resume).")] = "runs/demo",
    seed: Annotated[int, typer.Option(help="Seeds data, models and sampling.")] = 0,
    fast: Annotated[bool, typer.Option(help="A ~1 minute version (checks the pipeline).")] = False,
    full: Annotated[bool, typer.Option(help="Evaluate on 500 test tasks instead of 200.")] = False,
    rounds: Annotated[
        int, typer.Option(help="Collect+train rounds for OREO and rejection sampling.")
    ] = 1,
    oreo_algo: Annotated[str, typer.Option(help="oreo | oreo-step | oreo-response.")] = "oreo",
    ppo: Annotated[
        bool, typer.Option(help="Also train online PPO from the SFT policy (about 5 minutes).")
    ] = False,
) -> None:
    """SFT -> sample -> train OREO and the baselines from the same episodes -> evaluate."""
    from oreo_agents.recipes.demo import demo_config, method_label, run_demo

    console = Console()
    try:
        cfg = demo_config(
            out=out, seed=seed, fast=fast, full=full, rounds=rounds, oreo_algo=oreo_algo, ppo=ppo
        )
        with console.status("starting") as status:

            def stage(name: str) -> None:
                console.log(name)
                status.update(f"[bold]{name}[/]...")

            report = run_demo(cfg, stage)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: re-run the same command to resume")
        raise typer.Exit(130) from None
    except (ValueError, OSError, ImportError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    table = Table(title=f"{report['env']}: test success (greedy unless noted), seed {seed}")
    for col in ("method", "round", "success", "95% CI", "tasks", "line acc", "AUROC"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for key, r in report["results"].items():
        rnd = key.partition("-r")[2]
        low, high = r["ci95"]
        lines = r.get("lines", {}).get("line_accuracy")
        auroc = r.get("value_auroc", {}).get("within_task")
        table.add_row(
            method_label(key, report["config"]),
            str(int(rnd) + 1) if rnd else "", f"{r['success_rate']:.1%}",
            f"{low:.1%}-{high:.1%}", str(r["tasks"]), "" if lines is None else f"{lines:.1%}",
            "" if auroc is None else f"{auroc:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print(
        "line acc: right lines of the chains / lines; AUROC: within a test task, how often the "
        "value model (or the ORM) scores a right sample above a wrong one (0.5: chance)"
    )
    console.print(f"{report['total_s']:.0f} s; report {out}/report.json, plot {out}/demo.png")
