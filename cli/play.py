"""Play any registered env by hand in the terminal: see the observation, type an action."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from oreo_cli.options import env_options, make_env

QUIT = (":q", ":quit")


@dataclass(frozen=True)
class PlayConfig:
    """What `oreo play` runs.

    Attributes:
        env: A registered env id (``oreo envs`` lists them).
        options: Keyword arguments for the env's constructor.
        seed: Seeds the task order; the same seed replays the same tasks.
        task_id: Start on this task instead of a seeded draw.
        episodes: Stop after this many episodes (0: until EOF or ``:q``).
    """

    env: str
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    task_id: str | None = None
    episodes: int = 0

    def __post_init__(self):
        if self.episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {self.episodes}")


def play(
    env: Annotated[str, typer.Argument(help="Env id, e.g. oreo/GSMSymbolic-v0.")],
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="Env option KEY=VALUE (repeatable), e.g. path=x.jsonl."
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="Shortcut for --option split=SPLIT.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the task order.")] = None,
    task_id: Annotated[str | None, typer.Option(help="Play this task first.")] = None,
    episodes: Annotated[int, typer.Option(help="Stop after N episodes (0 = until EOF).")] = 0,
) -> None:
    """Play an env by hand: shows each observation, reads an action per line ('\\n' types a
    newline, a number picks an admissible action, :q quits), shows reward and info."""
    console = Console()
    try:
        options = env_options(option, split)
        cfg = PlayConfig(env, options, seed, task_id, episodes)
        run_play(cfg, console)
    except KeyboardInterrupt:
        console.print("\n[yellow]stopped[/]: play keeps no record; nothing to resume")
        raise typer.Exit(130) from None
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None


def run_play(cfg: PlayConfig, console: Console) -> None:
    """The interactive loop; returns at EOF, ``:q`` or after ``cfg.episodes`` episodes."""
    env = make_env(cfg.env, cfg.options)
    reset_options = {"task_id": cfg.task_id} if cfg.task_id is not None else None
    obs, info = env.reset(seed=cfg.seed, options=reset_options)
    played, total = 0, 0.0
    _show_obs(console, obs, f"{cfg.env}  task {info['task_id']}")
    while True:
        action = _read_action(console, info.get("admissible_actions"))
        if action is None:
            break
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        if obs.strip():
            _show_obs(console, obs, "observation")
        _show_info(console, obs, reward, terminated, truncated, info)
        if terminated or truncated:
            played += 1
            outcome = "[green]solved[/]" if info.get("success") else "[red]not solved[/]"
            console.print(f"episode {played} over: {outcome}, return {total:g}\n")
            if cfg.episodes and played >= cfg.episodes:
                break
            obs, info = env.reset()
            total = 0.0
            _show_obs(console, obs, f"{cfg.env}  task {info['task_id']}")
    env.close()


def _read_action(console: Console, admissible: list[str] | None) -> str | None:
    if admissible:
        listing = Text("admissible:")
        for i, a in enumerate(admissible, start=1):
            listing.append(f"  {i} ", style="dim").append(a)
        console.print(listing)
    try:
        line = input("> ")
    except EOFError:
        return None
    if not sys.stdin.isatty():  # piped input is not echoed: show it so the transcript reads right
        print(line)
    if line.strip() in QUIT:
        return None
    if admissible and line.strip().isdigit() and 1 <= int(line) <= len(admissible):
        return admissible[int(line) - 1]
    return line.replace("\\n", "\n")


def _show_obs(console: Console, text: str, title: str) -> None:
    # Text(...) so that brackets in a problem ("[0, 1]") are not read as rich markup
    console.print(Panel(Text(text), title=Text(title), title_align="left"))


def _show_info(
    console: Console, obs: str, reward: float, terminated: bool, truncated: bool, info: dict
) -> None:
    table = Table(show_header=False, box=None, padding=(0, 1))
    if obs and not obs.strip():  # whitespace-only feedback (a step's closing newline)
        table.add_row("observation", repr(obs))
    table.add_row("reward", f"{reward:g}")
    table.add_row("terminated", str(terminated))
    table.add_row("truncated", str(truncated))
    for key, value in info.items():
        if key != "admissible_actions":
            table.add_row(key, Text(repr(value)))
    console.print(table)
