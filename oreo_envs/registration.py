"""Registering text envs with Gymnasium, listing them, and loading third-party plug-ins.

A plug-in is an installed package that declares an entry point in the ``oreo.envs`` group::

    [project.entry-points."oreo.envs"]
    my_envs = "my_package.envs:register_envs"   # a function that calls oreo_envs.register(...)

``import oreo_envs`` loads every plug-in, so its ids work with ``gymnasium.make`` and appear in
``oreo envs`` without changes here. The value may also name a module whose import registers.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import gymnasium

ENTRY_POINT_GROUP = "oreo.envs"
_descriptions: dict[str, str] = {}
_plugins_loaded = False


def register(
    id: str,
    entry_point: Any,
    *,
    description: str,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    **gym_kwargs: Any,
) -> None:
    """Register a text env with Gymnasium and give it a one-line description for ``oreo envs``.

    Args:
        id: The env id, ``namespace/Name-vN``.
        entry_point: The env class, or ``"module:Class"``.
        description: One line shown by ``oreo envs`` and `list_envs`.
        max_episode_steps: Step limit enforced by Gymnasium's ``TimeLimit`` (truncation).
        kwargs: Default constructor arguments; ``gymnasium.make(id, **kw)`` overrides them.
        **gym_kwargs: Passed on to `gymnasium.register`.
    """
    gymnasium.register(
        id=id,
        entry_point=entry_point,
        max_episode_steps=max_episode_steps,
        kwargs=kwargs or {},
        **gym_kwargs,
    )
    _descriptions[id] = " ".join(description.split())


def list_envs() -> list[tuple[str, str]]:
    """All registered text envs as sorted ``(id, description)`` pairs, plug-ins included.

    Envs registered straight through `gymnasium.register` in the ``oreo`` namespace are listed
    too, with their entry point as the description.
    """
    found = dict(_descriptions)
    for env_id, spec in gymnasium.registry.items():
        if spec.namespace == "oreo" and env_id not in found:
            found[env_id] = f"(no description) {spec.entry_point}"
    return sorted(found.items())


def load_plugins() -> list[str]:
    """Load the ``oreo.envs`` entry points of installed packages (once per process).

    A plug-in that fails to load is reported with a warning and skipped, so one broken package
    cannot make every env unusable.

    Returns:
        The names of the entry points loaded by this call.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    return run_entry_points(ENTRY_POINT_GROUP, "env")


def run_entry_points(group: str, kind: str) -> list[str]:
    """Load every entry point of ``group``, calling those that name a function; one that fails
    is reported with a warning naming the ``kind`` of plug-in, and skipped.

    Returns:
        The names of the entry points loaded.
    """
    loaded = []
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
            if not isinstance(obj, ModuleType) and callable(obj):
                obj()
        except Exception as e:  # noqa: BLE001 - report any plug-in failure, keep going
            warnings.warn(
                f"oreo {kind} plug-in {ep.name!r} ({ep.value}) failed to load: "
                f"{type(e).__name__}: {e}",
                stacklevel=3,
            )
            continue
        loaded.append(ep.name)
    return loaded


def make_env(env_id: str, options: dict[str, Any] | None = None) -> Any:
    """``gymnasium.make`` after registering oreo's envs and plug-ins, with a readable error.

    Raises:
        ValueError: The id is unknown (the message lists the registered ids) or the env's
            constructor rejected the options.
    """
    # oreo's own ids and the plug-ins' are registered: importing this module ran the package's
    # __init__ first, which registers them
    try:
        return gymnasium.make(env_id, **(options or {}))
    except gymnasium.error.Error as e:
        known = ", ".join(env for env, _ in list_envs())
        raise ValueError(f"{e} Registered text envs: {known}") from None
    except TypeError as e:  # an option the env's constructor does not take
        raise ValueError(f"{env_id}: {e}") from None
