"""Checkpoints that a kill at any instant cannot break, and interrupts that save first.

Layout of a training run's folder::

    OUT/.lock                 held by the run's processes while they write (one run at a time)
    OUT/ckpt-00000040/        one complete checkpoint: state/ (accelerate: optimizers,
                              schedulers, RNG), policy/, value/ (OREO), progress.json
    OUT/ckpt-00000020/        the one before it, kept to fall back on
    OUT/checkpoint -> ckpt-00000040       a relative symlink, switched with one atomic rename
    OUT/policy -> checkpoint/policy       what users load (``from_pretrained(OUT/policy)``)
    OUT/value  -> checkpoint/value
    OUT/metrics.jsonl

A checkpoint is written into a new ``ckpt-STEP`` folder, flushed to disk, and only then made
current by replacing the ``checkpoint`` link (POSIX ``rename`` of a symlink is atomic); then the
exports are linked and checkpoints older than the one before are deleted. A kill before the
switch leaves the previous checkpoint current (the half-written folder is removed on the next
start); a kill after it leaves the new one, and the next start links the exports and deletes
the older checkpoints that a kill may have left (`repair`). A failed write (a full disk)
removes the partial folder and says which checkpoint is kept. A current checkpoint that cannot
be read (a damaged progress record or state file) is passed over for the one before it, with a
note (`resumable`).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oreo_envs.files import atomic_write

LINK = "checkpoint"
PREFIX = "ckpt-"
PROGRESS = "progress.json"
EXPORTS = ("policy", "value")  # OUT/<name> -> checkpoint/<name>


class CheckpointDamaged(ValueError):
    """A checkpoint folder whose progress record or state cannot be read."""


class CheckpointDir:
    """The checkpoints of one run folder (module docstring)."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.base: str | None = None  # the checkpoint this run resumed from or last saved

    @property
    def current(self) -> Path | None:
        """The current checkpoint folder, None before the first save."""
        link = self.out / LINK
        return link if link.is_symlink() and (link / PROGRESS).exists() else None

    def progress(self) -> dict[str, Any] | None:
        """The current checkpoint's progress record (step, position in the data, config).

        Raises:
            CheckpointDamaged: The record cannot be read.
        """
        current = self.current
        return read_progress(current) if current else None

    def check_link(self) -> None:
        """Refuse a current checkpoint without its progress record: the run's position in the
        data is lost, and starting over would silently discard its steps.

        Raises:
            ValueError: The link points at a folder without ``progress.json``.
        """
        link = self.out / LINK
        if link.is_symlink() and not (link / PROGRESS).exists():
            target = os.readlink(link)
            raise ValueError(
                f"{link} -> {target} has no {PROGRESS} (deleted?), so where the run stopped is "
                f"unknown; restore it, or remove {link} to resume from an earlier checkpoint, "
                "or choose another --out"
            )

    def resumable(self) -> list[Path]:
        """Complete checkpoints to resume from, best first: the current one, then the older
        ones kept (newest first)."""
        link = self.out / LINK
        current = os.readlink(link) if link.is_symlink() else None
        folders = sorted(
            (p for p in self.out.glob(f"{PREFIX}*") if (p / PROGRESS).exists()),
            key=lambda p: (p.name != current, -self._step_of(p.name)),
        )
        return folders

    def foreign(self) -> list[str]:
        """Entries that a run folder without a checkpoint should not hold (another tool's
        output, or a run of an older layout): a new run there would mix with them."""
        if self.current or not self.out.exists():
            return []
        names = [*EXPORTS, "state"]
        return [n for n in names if (self.out / n).exists() and not (self.out / n).is_symlink()]

    def repair(self) -> None:
        """Remove what a killed save left behind (incomplete ``ckpt-*`` folders, the temporary
        link, checkpoints older than the one kept before the current one: a kill between the
        switch and the pruning) and link the exports a kill between the switch and the export
        left missing."""
        current = os.readlink(self.out / LINK) if (self.out / LINK).is_symlink() else None
        for path in self.out.glob(f"{PREFIX}*"):
            if path.name != current and not (path / PROGRESS).exists():
                shutil.rmtree(path, ignore_errors=True)
        if current is not None:
            step = self._step_of(current)
            older = sorted(
                (p for p in self.out.glob(f"{PREFIX}*") if -1 < self._step_of(p.name) < step),
                key=lambda p: self._step_of(p.name),
            )
            for path in older[:-1]:  # all but the newest, the fallback
                shutil.rmtree(path, ignore_errors=True)
        for tmp in self.out.glob(f".{LINK}.*.tmp"):
            tmp.unlink(missing_ok=True)
        (self.out / f"{LINK}.tmp").unlink(missing_ok=True)  # the name before unique names
        if current is not None:
            for name in EXPORTS:
                self._export(name)

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
        if folder.name == previous and folder.name == self.base:  # saved already
            return folder
        if main:
            if folder.name == previous and self.base:  # a damaged current one, redone
                self._switch(self.base)  # so that no kill leaves the link at a partial folder
            shutil.rmtree(folder, ignore_errors=True)
        barrier()
        try:
            write(folder)
            if main:
                _fsync_tree(folder)
        except Exception as e:  # OSError; torch's RuntimeError and safetensors' own on ENOSPC
            if main:
                shutil.rmtree(folder, ignore_errors=True)
            raise ValueError(
                f"could not write the checkpoint of step {step} in {folder} ({describe_error(e)}); "
                f"{self._kept(previous)}"
            ) from None
        barrier()
        if main:
            self._switch(folder.name)
            for name in EXPORTS:
                self._export(name)
            keep = {folder.name, self.base}
            for path in self.out.glob(f"{PREFIX}*"):
                if path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)
        self.base = folder.name
        barrier()
        return folder

    def _switch(self, name: str) -> None:
        tmp = self.out / f".{LINK}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        os.symlink(name, tmp)
        try:
            os.replace(tmp, self.out / LINK)  # the switch: atomic
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.out)

    def _kept(self, previous: str | None) -> str:
        if previous is None:
            return "no earlier checkpoint exists"
        return f"the checkpoint of step {self._step_of(previous)} is kept ({self.out / previous})"

    def _export(self, name: str) -> None:
        link = self.out / name
        if (self.out / LINK / name).exists() and not link.is_symlink():
            os.symlink(f"{LINK}/{name}", link)

    @staticmethod
    def _step_of(name: str) -> int:
        try:
            return int(name[len(PREFIX) :])
        except ValueError:
            return -1


def read_progress(folder: Path) -> dict[str, Any]:
    """A checkpoint's progress record.

    Raises:
        CheckpointDamaged: It cannot be read or is not a progress record.
    """
    try:
        progress = json.loads((folder / PROGRESS).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        why = describe_error(e)
        raise CheckpointDamaged(f"{folder / PROGRESS} cannot be read ({why})") from None
    if not isinstance(progress, dict) or not {"step", "micro_batches", "config"} <= set(progress):
        raise CheckpointDamaged(f"{folder / PROGRESS} is not a progress record")
    return progress


def describe_error(error: BaseException) -> str:
    """An error's cause in one short line."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip().splitlines()
    first = text[-1] if text else ""  # torch puts the cause on the last line
    return f"{type(error).__name__}: {first}"[:200]


def resume_points(ckpts: CheckpointDir, cfg: Any) -> list[tuple[Path, dict[str, Any]]]:
    """The checkpoints the run ``cfg`` (a `TrainConfig`) resumes from, best first (the current
    one, then the one kept before it), each with its progress record; [] for a new run. A
    checkpoint whose progress record is damaged is passed over with a note.

    Raises:
        ValueError: The folder holds another run, output that is not a run's, a checkpoint link
            without its progress record, or only damaged checkpoints.
    """
    ckpts.check_link()
    points, damaged = [], []
    for folder in ckpts.resumable():
        try:
            points.append((folder, read_progress(folder)))
        except CheckpointDamaged as e:
            damaged.append(str(e))
    if not points:
        if damaged:
            raise ValueError(f"{damaged[0]}, and no earlier checkpoint is kept; choose another "
                             "--out, or remove the folder to start over")  # fmt: skip
        foreign = ckpts.foreign()
        if foreign:
            raise ValueError(
                f"{ckpts.out} holds {', '.join(foreign)} but no oreo train checkpoint; "
                "choose another --out"
            )
        return []
    old = points[0][1]["config"]
    changed = cfg.changed(old)
    if changed:
        raise ValueError(
            f"{ckpts.out} holds a run with other settings ({', '.join(changed)}; e.g. algo "
            f"{old.get('algo')!r}); resume with the same settings or choose another --out"
        )
    if damaged:
        note(f"{damaged[0]}; resuming from step {points[0][1]['step']} ({points[0][0]})")
    return points


def load_first(ckpts: CheckpointDir, points: list[tuple[Path, dict]], accelerator: Any,
               agree: Callable[[Any, bool], bool]) -> dict[str, Any]:  # fmt: skip
    """Load the first checkpoint of ``points`` whose state every process can read (``agree``:
    true on every process when it is on any); returns its progress record. A damaged one (a
    truncated state file) is passed over with a note.

    Raises:
        ValueError: No checkpoint's state can be read.
    """
    reasons = []
    for i, (folder, progress) in enumerate(points):
        try:
            accelerator.load_state(str(folder / "state"))
            reason = None
        except Exception as e:  # a damaged file raises whatever its reader raises
            reason = describe_error(e)
        if not agree(accelerator, reason is not None):
            ckpts.base = folder.name
            return progress
        reasons.append(f"the state in {folder} cannot be read ({reason or 'on another rank'})")
        if i + 1 < len(points) and accelerator.is_main_process:
            note(f"{reasons[-1]}; resuming from step {points[i + 1][1]['step']}")
    raise ValueError(f"{reasons[0]}, and no earlier checkpoint can be; choose another --out")


def note(text: str) -> None:
    """One line to the user, whatever logging is configured."""
    import logging

    logging.getLogger(__name__).warning(text)


def write_progress(folder: Path, progress: dict[str, Any]) -> None:
    """The progress record, written last and whole: its presence marks a complete checkpoint."""
    with atomic_write(folder / PROGRESS, text=True) as f:
        f.write(json.dumps(progress, indent=2) + "\n")


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
