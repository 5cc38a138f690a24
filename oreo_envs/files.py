"""Writing a file whole or not at all, safely when several processes write the same path, and
the writer lock of an output folder (an episode store, a training run)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | Path, *, text: bool = False) -> Iterator[IO[Any]]:
    """Open a file to write that appears at ``path`` whole, or not at all.

    The data goes to a temporary file in the same folder whose name is unique to this process
    and call (pid and a random token: two writers of one path, threads or processes, never share
    one), which is flushed to disk and renamed onto ``path`` when the block ends. Readers see
    the old file or the new one, never part of one; of two concurrent writers, the last rename
    wins whole. If anything fails, a full disk included, or the block raises, the temporary
    file is removed, ``path`` is left as it was, and the error propagates.

    Args:
        path: The file to (re)place. Its folder must exist.
        text: Yield a UTF-8 text file instead of a binary one.

    Yields:
        The open temporary file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 (not mkstemp's 0o600) so the result has the permissions open() gives.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        f = os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        _remove(tmp)
        raise
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            f.close()  # closes the descriptor even when the flush of its buffer fails
        _remove(tmp)
        raise
    _fsync_folder(path.parent)


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # the error to report is the one that got us here
        tmp.unlink()


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable. Some filesystems cannot fsync a folder: the file is in
    place either way, so that is not an error."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


LOCK = ".lock"


class FolderLockedError(ValueError):
    """Another live process is writing to the folder."""


class WriterLock:
    """The writer lock of an output folder, held from construction to `release` (or the
    process's death: the kernel drops an ``flock`` however the process ends).

    One process holds ``FOLDER/.lock`` exclusively. The ranks of one job (``torchrun``,
    ``accelerate launch``) each hold it shared and their own ``.lock-rR`` exclusively, so a
    second job is refused at every rank. The holder's pid is written into the lock file, for
    the message a refused writer gives.

    Args:
        folder: The folder (created if missing).
        rank: This process's rank in its job.
        world: The job's number of processes.

    Raises:
        FolderLockedError: Another writer holds the folder.
    """

    def __init__(self, folder: str | Path, *, rank: int = 0, world: int = 1):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fds: list[int] = []
        try:
            if world == 1:
                self._fds.append(self._take(LOCK, shared=False))
            else:
                self._fds.append(self._take(LOCK, shared=True))
                self._fds.append(self._take(f"{LOCK}-r{rank}", shared=False))
        except BaseException:
            self.release()
            raise

    @property
    def held(self) -> bool:
        return bool(self._fds)

    def release(self) -> None:
        while self._fds:
            fd = self._fds.pop()
            # Explicitly: forked workers (env workers) share the lock, and closing only this
            # copy of the descriptor would leave the folder locked until they exit.
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _take(self, name: str, *, shared: bool) -> int:
        fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode("ascii", errors="replace").strip() or "unknown"
            os.close(fd)
            raise FolderLockedError(
                f"another process (pid {pid}) is writing to {self.folder}; wait for it to "
                "finish or write somewhere else"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd
