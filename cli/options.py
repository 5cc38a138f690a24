"""Parsing of the flags every command shares: env options given as ``KEY=VALUE``."""

from __future__ import annotations

import json
from typing import Any


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


def env_options(pairs: list[str] | None, split: str | None = None) -> dict[str, Any]:
    """The env options of a command: ``-o KEY=VALUE`` pairs, with ``--split`` as a shortcut."""
    options = parse_options(pairs)
    if split is not None:
        options["split"] = split
    return options


def make_env(env_id: str, options: dict[str, Any] | None = None) -> Any:
    """``gymnasium.make`` after registering oreo's envs and plug-ins, with a readable error.

    Raises:
        ValueError: The id is unknown (the message lists the registered ids) or the env's
            constructor rejected the options.
    """
    import gymnasium

    import oreo_envs

    try:
        return gymnasium.make(env_id, **(options or {}))
    except gymnasium.error.Error as e:
        known = ", ".join(env for env, _ in oreo_envs.list_envs())
        raise ValueError(f"{e} Registered text envs: {known}") from None
    except TypeError as e:  # an option the env's constructor does not take
        raise ValueError(f"{env_id}: {e}") from None
