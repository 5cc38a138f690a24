"""Named specs with plug-ins: what the algorithms (`oreo train --algo`) and the evaluation
strategies (`oreo rollout --strategy`) are registered in."""

from __future__ import annotations

from typing import Any

from oreo_envs.registration import run_entry_points


class Registry:
    """Specs by name, and the installed packages' plug-ins of one entry-point group, loaded the
    first time a name is not found or the names are listed.

    Args:
        kind: What a spec is, for messages ("algorithm", "strategy").
        option: The setting that names one, for messages ("algo", "strategy").
        group: The entry-point group of plug-ins ("oreo.algorithms"); each entry point is a
            function that calls `register`.
    """

    def __init__(self, kind: str, option: str, group: str):
        self.kind, self.option, self.group = kind, option, group
        self.specs: dict[str, Any] = {}
        self._plugins_loaded = False

    def register(self, spec: Any) -> Any:
        """Add ``spec`` under ``spec.name``; returns it.

        Raises:
            ValueError: Another spec already has that name.
        """
        if spec.name in self.specs and self.specs[spec.name] is not spec:
            article = "an" if self.kind[0] in "aeiou" else "a"
            raise ValueError(f"{article} {self.kind} named {spec.name!r} is already registered")
        self.specs[spec.name] = spec
        return spec

    def get(self, name: str) -> Any:
        """The spec registered as ``name`` (plug-ins included).

        Raises:
            ValueError: No such spec (the message lists the registered ones).
        """
        if name not in self.specs:
            self.load_plugins()
        if name not in self.specs:
            raise ValueError(f"{self.option} must be one of {', '.join(self.names())}; "
                             f"got {name!r}")  # fmt: skip
        return self.specs[name]

    def names(self) -> tuple[str, ...]:
        """Every registered name, plug-ins included, in registration order."""
        self.load_plugins()
        return tuple(self.specs)

    def load_plugins(self) -> None:
        """Load the group's entry points of installed packages (once per process); a plug-in
        that fails is reported with a warning and skipped."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        run_entry_points(self.group, self.kind)
