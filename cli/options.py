"""What every command shares: env options given as ``KEY=VALUE``, making an env, and command-line
options derived from the config dataclasses, so each option is defined once."""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, get_type_hints

import typer

from oreo_envs.registration import make_env  # noqa: F401 (the commands import it from here)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["path=test.jsonl", "size=10"]`` into ``{"path": "test.jsonl", "size": 10}``.

    A value is read as JSON when it parses (numbers, true/false, null, lists, objects), else kept
    as a string, so ``granularity=step`` needs no quotes.

    Raises:
        ValueError: A pair has no ``=`` or an empty key.
    """
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def option_flags(options: dict[str, Any]) -> list[str]:
    """``-o KEY=VALUE`` arguments that `parse_options` reads back as ``options`` (each value as
    JSON), for scripts that drive the commands with a recipe's env options."""
    return [a for key, value in options.items() for a in ("-o", f"{key}={json.dumps(value)}")]


def env_options(pairs: list[str] | None, split: str | None = None) -> dict[str, Any]:
    """The env options of a command: ``-o KEY=VALUE`` pairs, with ``--split`` as a shortcut."""
    options = parse_options(pairs)
    if split is not None:
        options["split"] = split
    return options


# -- Options derived from config dataclasses: each field is defined (name, type, default, help)
# once, in its dataclass and the "Attributes:" section of its docstring.


@dataclass(frozen=True)
class Flag:
    """How a config field appears on the command line when ``--field-name`` is not enough.

    Attributes:
        names: The option's names (e.g. ``("--model", "--policy")``); default ``--field-name``.
        annotation: The command-line type when it differs from the field's (e.g. a list of
            ``KEY=VALUE`` strings for a dict field).
        help: Replaces the field's documentation.
    """

    names: tuple[str, ...] = ()
    annotation: Any = None
    help: str | None = None


def field_docs(cls: type) -> dict[str, str]:
    """Each field's text in the Google-style ``Attributes:`` sections of ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        lines = inspect.cleandoc(klass.__doc__ or "").splitlines()
        inside, name = False, None
        for line in lines:
            if line.strip() == "Attributes:":
                inside = True
                continue
            if not inside:
                continue
            if line and not line.startswith(" "):
                break  # the next section
            match = re.match(r"^ {4}(\w+)(?: \(.*?\))?: (.*)$", line)
            if match:
                name = match.group(1)
                docs[name] = match.group(2).strip()
            elif name and line.strip():
                docs[name] += " " + line.strip()
    return docs


def config_parameters(
    cls: type, flags: dict[str, Flag] | None = None, *, skip: tuple[str, ...] = (),
    optional: bool = False,
) -> list[inspect.Parameter]:  # fmt: skip
    """Typer parameters for the fields of the dataclass ``cls``.

    Args:
        cls: The config dataclass.
        flags: Per-field names, type or help where they differ from the defaults.
        skip: Fields the command does not expose this way.
        optional: Every option defaults to None, meaning "not given" (for commands that merge
            options over a config file); the field's default is then named in the help.

    Raises:
        TypeError: A field has no documentation (every option must say what it does).
    """
    flags = flags or {}
    docs, hints = field_docs(cls), get_type_hints(cls)
    params = []
    required_first = sorted(fields(cls), key=lambda f: _has_default(f))
    for f in required_first:
        if f.name in skip:
            continue
        flag = flags.get(f.name, Flag())
        text = flag.help or docs.get(f.name)
        if not text:
            raise TypeError(f"{cls.__name__}.{f.name} has no documentation")
        has_default = _has_default(f)
        default = f.default if f.default is not MISSING else None
        annotation = flag.annotation or hints[f.name]
        if optional:
            if has_default and default is not None:
                text = f"{text} (default {default!r})"
            annotation, default = annotation | None, None
        elif not has_default:
            default = inspect.Parameter.empty
        dashed = f.name.replace("_", "-")
        switch = hints[f.name] is bool  # --x / --no-x, so a True default can be turned off
        names = flag.names or (f"--{dashed}/--no-{dashed}" if switch else f"--{dashed}",)
        option = typer.Option(*names, help=text, show_default=not optional)
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[annotation, option],
            )
        )
    return params


def _has_default(f: Any) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def with_parameters(params: list[inspect.Parameter], doc: str) -> Callable:
    """Decorate ``fn(**values)`` so typer sees ``params`` as its options and ``doc`` as help."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def command(**values: Any) -> Any:
            return fn(**values)

        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = doc
        del command.__wrapped__  # typer must read the signature above, not fn's
        return command

    return decorate


ENV_OPTION = Flag(
    names=("--option", "-o"),
    annotation=list[str],
    help="Env option KEY=VALUE (repeat); --split S is short for -o split=S.",
)

SPLIT = inspect.Parameter(
    "split",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[str | None, typer.Option(help="Shortcut for -o split=SPLIT.")],
)


def check_scripted_env(policy: str, env_id: str, options: dict[str, Any]) -> None:
    """Refuse, on one line and before any work, an env that lacks what the scripted ``policy``
    needs (`oreo_agents.rollout.scripted.check_scripted`)."""
    from oreo_agents.rollout.scripted import check_scripted

    env = make_env(env_id, options)
    try:
        check_scripted(policy, env, env_id)
    finally:
        env.close()


def duration(seconds: float) -> str:
    """``seconds`` as H:MM:SS, or M:SS under an hour (how progress lines show time left)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
