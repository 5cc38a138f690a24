"""The ``oreo`` executable (and ``python -m oreo_cli``).

The commands themselves turn Ctrl-C into one line that says what was kept (cli/collect.py and its
siblings). This wrapper does the same for the seconds before a command starts its work: while
torch and transformers are imported, where Python would print a traceback, and while the options
are parsed or a command imports what it needs, where typer exits 130 without a word. It imports
nothing heavy itself, so the imports are inside the guard.
"""

from __future__ import annotations

import sys

STARTING = "interrupted: the command had not started its work; nothing to resume"


def main(args: list[str] | None = None) -> None:
    try:
        import typer  # inside the Ctrl-C guard

        from oreo_cli.main import app  # inside the Ctrl-C guard

        app(args=args)
    except KeyboardInterrupt:
        print(STARTING, file=sys.stderr)
        sys.exit(130)
    except SystemExit as e:
        # typer turns a KeyboardInterrupt it meets into Exit(130) *from* it; a command that
        # printed its own line raised Exit(130) from None
        if isinstance(e.__context__, typer.Exit) and isinstance(
            e.__context__.__cause__, KeyboardInterrupt
        ):
            print(STARTING, file=sys.stderr)
        raise
