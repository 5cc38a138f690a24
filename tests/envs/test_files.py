"""`atomic_write`: the file appears whole or not at all, and no temporary file is left."""

from __future__ import annotations

import errno
import os

import pytest

from oreo_envs.files import atomic_write


def test_writes_bytes_and_text_with_the_permissions_open_gives(tmp_path):
    path = tmp_path / "r.json"
    with atomic_write(path) as f:
        f.write(b"old\n")
    with atomic_write(path, text=True) as f:
        f.write("é\n")
    assert path.read_bytes() == "é\n".encode()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["r.json"]


@pytest.mark.parametrize("fail", ["block", "fsync", "replace"])
def test_a_failure_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch, fail):
    path = tmp_path / "r.json"
    path.write_text("old\n")

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if fail != "block":
        monkeypatch.setattr(os, fail, full)
    with pytest.raises(OSError, match="No space left"):
        with atomic_write(path, text=True) as f:
            f.write("new\n" * 10_000)
            if fail == "block":
                full()
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["r.json"]
