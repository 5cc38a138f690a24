"""`oreo train`: OREO or a baseline on logged episodes; writes OUT/policy (and OUT/value)."""

from __future__ import annotations

import inspect
import os
import signal
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from oreo_agents.online.driver import RECORD_KEYS
from oreo_agents.training.checkpoint import TrainingInterrupted
from oreo_agents.training.config import TrainConfig
from oreo_cli.options import (
    ENV_OPTION,
    SPLIT,
    Flag,
    config_parameters,
    duration,
    field_docs,
    parse_options,
    with_parameters,
)
from oreo_cli.options import env_options as env_options_of

FLAGS = {
    "model": Flag(names=("--model", "--policy")),
    "data": Flag(
        annotation=list[str],
        help="Episode store, episode file or published OREO JSON(L) file (repeat to combine).",
    ),
    "env_options": ENV_OPTION,
}
EXTRA = [
    SPLIT,
    inspect.Parameter(
        "config",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option(help="YAML/JSON file of fields (the loop's and the algorithm's)."),
        ],
    ),
    inspect.Parameter(
        "set_",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            list[str] | None,
            typer.Option(
                "--set", help="Any field as KEY=VALUE, the algorithm's settings below included."
            ),
        ],
    ),
]


class _TrainCommand(typer.core.TyperCommand):
    """Lists each algorithm's settings under the options, read from the specs when help is
    asked for (so starting the CLI does not import the algorithms)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = algorithm_help()
        super().format_help(ctx, formatter)


def algorithm_help(plugins: bool = True) -> str:
    """A paragraph per algorithm (its name and what it is), then one indented paragraph per
    setting with its doc and default (``--set`` takes them). ``plugins=False``: only oreo's
    own algorithms, whatever is installed (docs/cli.md describes this repository)."""
    from oreo_agents.algorithms import ALGORITHMS, algorithm_names
    from oreo_agents.algorithms.base import user_fields

    paragraphs = ["Algorithms (--algo) and their settings (--set KEY=VALUE):"]
    for name in algorithm_names():
        spec = ALGORITHMS[name]
        if not plugins and not type(spec).__module__.startswith("oreo_agents."):
            continue
        docs, defaults = field_docs(spec.config), spec.defaults()
        settings = [
            f"{f.name} = {getattr(defaults, f.name)!r}: {docs.get(f.name, '')}"
            for f in user_fields(spec.config)
        ]
        paragraphs.append(f"{name}: {spec.description} (lr {spec.default_lr:g}).")
        paragraphs += [f"    {s}" for s in settings]  # one indented paragraph each
    return "\n\n".join(paragraphs)


@with_parameters(
    [*config_parameters(TrainConfig, FLAGS, skip=("settings",), optional=True), *EXTRA],
    "Train a policy (and for OREO a value model) from logged episodes with accelerate.",
)
def train(*, config: Path | None, set_: list[str] | None, split: str | None, **flags: Any) -> None:
    # Under torchrun / accelerate launch every process runs this; one reports progress.
    console = Console(quiet=os.environ.get("RANK", "0") != "0")
    try:
        values = _load_config_file(config) if config else {}
        if flags.get("data"):
            flags["data"] = ",".join(flags["data"])
        options = env_options_of(flags.pop("env_options"), split)
        values.update({k: v for k, v in flags.items() if v is not None})
        if options:
            values["env_options"] = {**values.get("env_options", {}), **options}
        values.update(parse_options(set_))
        missing = [k for k in ("algo", "model", "out") if k not in values]
        if missing:
            raise ValueError(f"missing {', '.join('--' + m for m in missing)}")
        from oreo_agents.training.loop import run_train

        cfg = TrainConfig.from_dict(values)
        settings = ", ".join(f"{k} {v}" for k, v in asdict(cfg.settings).items() if v != "")
        console.print(
            f"[bold]{cfg.algo}[/] on {cfg.data or cfg.env} from {cfg.model} -> {cfg.out} "
            f"(lr {cfg.lr:g}, batch {cfg.batch_size}{', ' + settings if settings else ''})"
        )
        keys = cfg.spec.log_keys
        policy = run_train(
            cfg, log=lambda record: console.print(_format(record, keys), soft_wrap=True)
        )
    except TrainingInterrupted as e:
        console.print(
            f"[yellow]stopped by {signal.Signals(e.signum).name}[/]: saved the checkpoint of step "
            f"{e.step}; re-run the same command to resume from it",
            soft_wrap=True,  # one line at any width
        )
        raise typer.Exit(128 + e.signum) from None
    except KeyboardInterrupt:
        console.print(
            "[yellow]aborted[/]: the last complete checkpoint (if any) is kept; re-run the same "
            "command to resume from it",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    except (ValueError, TypeError, OSError) as e:
        Console().print(f"[bold red]error:[/] {e}")  # from any process
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


def _format(record: dict[str, Any], keys: tuple[str, ...]) -> str:
    if "iteration" in record:  # an online run's iteration ended (`oreo_agents.online.driver`)
        head = (f"[bold]iteration {record['iteration']}[/]  samples {record['samples_seen']}  "
                f"steps {record['optimizer_steps']}")  # fmt: skip
        # then the algorithm's totals (PPO: success, reward, kl), in its order
        totals = [
            f"success {v:.1%}" if k == "success_rate" else f"{k.removesuffix('_mean')} {v:.3f}"
            for k, v in record.items()
            if k not in RECORD_KEYS and isinstance(v, float)
        ]
        return "  ".join([head, *totals, f"{record['wall_s']:.0f} s"])
    parts = [f"step {record['step']}/{record['total_steps']}"]
    parts += [f"{k} {record[k]:.4f}" for k in keys if k in record]
    parts.append(f"{record['tokens_per_s']:.0f} tok/s")
    parts.append(f"pad {record['pad_fraction']:.0%}")
    parts.append(f"ETA {duration(record['eta_s'])}")
    return "  ".join(parts)
