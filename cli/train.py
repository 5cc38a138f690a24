"""`oreo train`: OREO or a baseline on logged episodes; writes OUT/policy (and OUT/value)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from oreo_cli.options import parse_options


def train(
    algo: Annotated[
        str | None, typer.Option(help="oreo | oreo-step | oreo-response | sft | rft | dpo | kto.")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(help="Episode store or OREO JSONL file (repeat to combine several)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "--policy", help="Starting checkpoint.")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Output folder (re-run to resume).")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML/JSON file of TrainConfig fields.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the data (paper: 1).")] = None,
    lr: Annotated[float | None, typer.Option(help="Policy learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per optimizer step.")] = None,
    micro_batch_size: Annotated[int | None, typer.Option(help="Sequences per forward.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Data order and init seed.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any TrainConfig field as KEY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Train a policy (and for OREO a value model) from logged episodes with accelerate."""
    console = Console()
    try:
        values = _load_config_file(config) if config else {}
        flags = {
            "algo": algo,
            "data": ",".join(data) if data else None,
            "model": model,
            "out": out,
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "micro_batch_size": micro_batch_size,
            "max_steps": max_steps,
            "seed": seed,
        }
        values.update({k: v for k, v in flags.items() if v is not None})
        values.update(parse_options(set_))
        missing = [k for k in ("algo", "data", "model", "out") if k not in values]
        if missing:
            raise ValueError(f"missing {', '.join('--' + m for m in missing)}")
        from oreo_agents.train import TrainConfig, run_train

        cfg = TrainConfig.from_dict(values)
        console.print(
            f"[bold]{cfg.algo}[/] on {cfg.data} from {cfg.model} -> {cfg.out} "
            f"(lr {cfg.lr:g}, batch {cfg.batch_size}, beta {cfg.beta}, alpha {cfg.alpha})"
        )
        policy = run_train(cfg, log=lambda record: console.print(_format(record)))
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/]: re-run the same command to resume from the last save"
        )
        raise typer.Exit(130) from None
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    console.print(f"saved the policy to {policy}")


def _load_config_file(path: Path) -> dict[str, Any]:
    import json

    import yaml

    text = path.read_text()
    values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
    return values


def _format(record: dict[str, Any]) -> str:
    keys = ("value_loss", "policy_loss", "kl", "sft_loss", "dpo_loss", "kto_loss")
    parts = [f"step {record['step']}"]
    parts += [f"{k} {record[k]:.4f}" for k in keys if k in record]
    parts.append(f"{record['tokens_per_s']:.0f} tok/s")
    parts.append(f"pad {record['pad_fraction']:.0%}")
    return "  ".join(parts)
