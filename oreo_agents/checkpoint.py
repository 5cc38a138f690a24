"""Checkpoints that a kill at any instant cannot break, and interrupts that save first.

Layout of a training run's folder::

    OUT/ckpt-00000040/        one complete checkpoint: state/ (accelerate: optimizers,
                              schedulers, RNG), policy/, value/ (OREO), progress.json
    OUT/checkpoint -> ckpt-00000040       a relative symlink, switched with one atomic rename
    OUT/policy -> checkpoint/policy       what users load (``from_pretrained(OUT/policy)``)
    OUT/value  -> checkpoint/value
    OUT/metrics.jsonl

A checkpoint is written into a new ``ckpt-STEP`` folder, flushed to disk, and only then made
current by replacing the ``checkpoint`` link (POSIX ``rename`` of a symlink is atomic); the
previous folder is deleted after the switch. A kill before the switch leaves the previous
checkpoint current (the half-written folder is removed on the next start); a kill after it
leaves the new one. A failed write (a full disk) removes the partial folder and says which
checkpoint is kept.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

LINK = "checkpoint"
PREFIX = "ckpt-"
PROGRESS = "progress.json"
EXPORTS = ("policy", "value")  # OUT/<name> -> checkpoint/<name>


class CheckpointDir:
    """The checkpoints of one run folder (module docstring)."""

    def __init__(self, out: str | Path):
        self.out = Path(out)

    @property
    def current(self) -> Path | None:
        """The current checkpoint folder, None before the first save."""
        link = self.out / LINK
        return link if link.is_symlink() and (link / PROGRESS).exists() else None

    def progress(self) -> dict[str, Any] | None:
        """The current checkpoint's progress record (step, position in the data, config)."""
        current = self.current
        return json.loads((current / PROGRESS).read_text()) if current else None

    def foreign(self) -> list[str]:
        """Entries that a run folder without a checkpoint should not hold (another tool's
        output, or a run of an older layout): a new run there would mix with them."""
        if self.current or not self.out.exists():
            return []
        names = [*EXPORTS, "state"]
        return [n for n in names if (self.out / n).exists() and not (self.out / n).is_symlink()]

    def clean(self) -> None:
        """Remove checkpoint folders a killed save left behind (all but the current one)."""
        current = os.readlink(self.out / LINK) if (self.out / LINK).is_symlink() else None
        for path in self.out.glob(f"{PREFIX}*"):
            if path.name != current:
                shutil.rmtree(path, ignore_errors=True)
        (self.out / f"{LINK}.tmp").unlink(missing_ok=True)

    def save(self, step: int, write: Callable[[Path], None], *, main: bool = True,
             barrier: Callable[[], None] = lambda: None) -> Path:  # fmt: skip
        """Write a checkpoint of ``step`` with ``write(folder)`` and make it current.

        In a multi-process run every process calls this (``write`` writes each rank's share);
        ``main`` marks the one that switches the link, ``barrier`` waits for all of them.

        Raises:
            ValueError: The checkpoint could not be written (e.g. the disk is full); the
                previous checkpoint is still current.
        """
        folder = self.out / f"{PREFIX}{step:08d}"
        previous = os.readlink(self.out / LINK) if (self.out / LINK).is_symlink() else None
        if folder.name == previous:  # this step is the current checkpoint already
            return folder
        if main:
            shutil.rmtree(folder, ignore_errors=True)
        barrier()
        try:
            write(folder)
            if main:
                _fsync_tree(folder)
        except OSError as e:
            if main:
                shutil.rmtree(folder, ignore_errors=True)
            kept = f"the checkpoint of step {self._step_of(previous)} is kept" if previous else (
                "no earlier checkpoint exists"
            )  # fmt: skip
            raise ValueError(
                f"could not write the checkpoint of step {step} in {self.out} "
                f"({e.strerror or e}); {kept}"
            ) from None
        barrier()
        if main:
            tmp = self.out / f"{LINK}.tmp"
            tmp.unlink(missing_ok=True)
            os.symlink(folder.name, tmp)
            os.replace(tmp, self.out / LINK)  # the switch: atomic
            _fsync_dir(self.out)
            for name in EXPORTS:
                self._export(name)
            if previous:
                shutil.rmtree(self.out / previous, ignore_errors=True)
        barrier()
        return folder

    def _export(self, name: str) -> None:
        link = self.out / name
        if (self.out / LINK / name).exists() and not link.is_symlink():
            os.symlink(f"{LINK}/{name}", link)

    @staticmethod
    def _step_of(name: str) -> int:
        return int(name[len(PREFIX) :])


def write_progress(folder: Path, progress: dict[str, Any]) -> None:
    """The progress record, written last: its presence marks a complete checkpoint."""
    (folder / PROGRESS).write_text(json.dumps(progress, indent=2) + "\n")


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` to disk, so the switch never points at data still in the
    page cache when the machine (not only the process) dies."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TrainingInterrupted(Exception):  # noqa: N818 - the name says what happened
    """Training stopped on SIGINT / SIGTERM after saving a checkpoint.

    Attributes:
        signum: The signal received.
        step: The optimizer step the checkpoint holds.
    """

    def __init__(self, signum: int, step: int):
        super().__init__(f"{signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


class Interrupts:
    """SIGINT / SIGTERM handlers for the training loop: the first signal asks the loop to save
    and stop at the next micro-batch boundary (`requested`); a second one aborts at once
    (KeyboardInterrupt). Outside the main thread, signals are left alone."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # the second signal: abort now, keep the last checkpoint
        self.signum = signum


def rng_state() -> dict[str, Any]:
    """The random states `accelerate.save_state` records (Python, NumPy, torch, CUDA)."""
    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
