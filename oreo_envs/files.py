"""Writing a file whole or not at all, safely when several processes write the same path."""

from __future__ import annotations

import contextlib
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
