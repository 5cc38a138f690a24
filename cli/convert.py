"""`oreo convert`: import the published OREO formats into an episode store, or export back."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape


def convert(
    src: Annotated[str, typer.Argument(help="Input file (import) or episode store (export).")],
    dst: Annotated[str, typer.Argument(help="Episode store folder (import) or .jsonl (export).")],
    src_format: Annotated[
        str, typer.Option("--from", help="oreo-math | oreo-agent (import) or oreo (export).")
    ],
    dst_format: Annotated[
        str | None, typer.Option("--to", help="Export format: oreo-math | oreo-agent.")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="Env id given to imports.")] = None,
) -> None:
    """Convert between oreo episodes and the OREO paper's math / agent (ETO) formats."""
    from oreo_agents.data.convert import convert as run_convert
    from oreo_agents.data.episodes import EpisodeFormatError

    console = Console()
    try:
        n = run_convert(src, dst, src_format=src_format, dst_format=dst_format, env_id=env)
    except KeyboardInterrupt:
        if src_format == "oreo":  # an export is written atomically, once complete
            said = f"nothing was written to {escape(dst)}; re-run the same command to export"
        else:
            said = (f"the episodes imported so far are kept in {escape(dst)}; re-run the same "
                    "command to resume")  # fmt: skip
        console.print(f"[yellow]interrupted[/]: {said}", soft_wrap=True)
        raise typer.Exit(130) from None
    except (EpisodeFormatError, ValueError, OSError) as e:
        # escape: a path such as "runs[2]/x.jsonl" is not rich markup
        console.print(f"[bold red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    console.print(f"converted {n} records: {escape(src)} -> {escape(dst)}")
